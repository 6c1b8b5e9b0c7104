package realnode

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// sharedStartBound bounds the start of a package's shared node; Main has
// built the programs before the tests began.
const sharedStartBound = 4 * time.Minute

var shared struct {
	main    bool
	bins    binaries.Set
	binsErr error
	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// Main finds (or builds) the node's programs before any test runs, then
// runs the package's tests with a real node available through Shared, and
// stops it after the tests (or on SIGINT/SIGTERM):
//
//	func TestMain(m *testing.M) { os.Exit(realnode.Main(m)) }
//
// If the test process is killed outright, the node's namespaces die with
// it (the kernel kills unshare, whose --kill-child ends them); its cgroup
// folders and cluster directory stay until the next Start sweeps them.
func Main(m *testing.M) int {
	shared.main = true
	// Build (or find) the programs before the tests start: go test's
	// -timeout alarm starts inside m.Run and would cut a cold build short.
	buildCtx, stopBuild := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	shared.bins, shared.binsErr = NodeBinaries(buildCtx, os.Stderr)
	interrupted := buildCtx.Err() != nil
	stopBuild()
	if interrupted {
		fmt.Fprintln(os.Stderr, "realnode: interrupted while building the node's programs")
		return 130
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "realnode: %v: stopping the package's node\n", sig)
		if err := stopShared(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	code := m.Run()
	signal.Stop(sigs)
	if err := stopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil {
		return nil
	}
	return shared.cluster.Stop()
}

// Shared returns the package's node, starting it on first use; every later
// caller gets the same node or the same error. Tests share it: work in a
// namespace of your own.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if !shared.main {
		t.Fatal("realnode.Shared needs the package's TestMain to call realnode.Main:\n\n\tfunc TestMain(m *testing.M) { os.Exit(realnode.Main(m)) }")
	}
	shared.once.Do(func() {
		if shared.binsErr != nil {
			shared.err = shared.binsErr
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartBound)
		defer cancel()
		c, err := Start(ctx, Options{Name: packageName(), Log: os.Stderr, Binaries: &shared.bins})
		shared.mu.Lock()
		shared.cluster, shared.err = c, err
		shared.mu.Unlock()
	})
	if shared.err != nil {
		t.Fatalf("realnode: the package's node did not start: %v", shared.err)
	}
	return shared.cluster
}

// packageName turns the test binary's name ("gate.test") into a name.
func packageName() string {
	base := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 12 {
		name = strings.Trim(name[:12], "-")
	}
	if name == "" {
		return "realnode"
	}
	return name
}
