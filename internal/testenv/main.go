package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

const (
	// envRunDir tells the test process (the supervised child) where to put
	// cluster directories; its presence marks the child.
	envRunDir = "KRGEOBUK_TESTENV_RUNDIR"
	// envBuildErr carries a failed binary build from the supervisor to the
	// child, so Shared reports it instead of building again.
	envBuildErr = "KRGEOBUK_TESTENV_BUILD_ERROR"

	prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER from <linux/prctl.h>

	// sharedStartBound bounds the start of the package's cluster; the
	// binaries are built before the tests run, outside this bound.
	sharedStartBound = 4 * time.Minute
)

var shared struct {
	main   bool
	runDir string

	once    sync.Once
	cluster *Cluster
	err     error
	mu      sync.Mutex // guards cluster against the signal handler
}

// Main runs the package's tests with a cluster available through Shared.
// Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// The first call runs as a supervisor: it builds the control-plane binaries
// if the cache lacks them (before any test timeout starts), then runs the
// tests in a child process and waits for it. The supervisor is a child
// subreaper: whatever the tests leave behind when they panic, time out or
// are killed is re-parented to it, killed and reaped, and the run directory
// holding every cluster directory is removed. SIGINT, SIGTERM and SIGQUIT
// are passed on to the tests, which stop their cluster and exit.
func Main(m *testing.M) int {
	if dir := os.Getenv(envRunDir); dir != "" {
		return runTests(m, dir)
	}
	return supervise()
}

func runTests(m *testing.M, runDir string) int {
	shared.main = true
	shared.runDir = runDir

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "testenv: %v: stopping the package's cluster\n", sig)
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

// Shared returns the package's cluster, starting it on first use. It fails
// the test when the package has no TestMain calling Main, or when the
// cluster cannot start (every later caller gets the same error).
//
// Tests share it: create objects in a namespace of your own, and undo
// cluster-wide faults (StopAPIServer, SetNodeReady) before returning, or use
// Start for a cluster of your own.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if !shared.main {
		t.Fatal("testenv.Shared needs the package's TestMain to call testenv.Main:\n\n\tfunc TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }")
	}
	shared.once.Do(func() {
		if msg := os.Getenv(envBuildErr); msg != "" {
			shared.err = errors.New(msg)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartBound)
		defer cancel()
		c, err := Start(ctx, Options{Name: packageName(), Dir: shared.runDir, Log: os.Stderr})
		shared.mu.Lock()
		shared.cluster, shared.err = c, err
		shared.mu.Unlock()
	})
	if shared.err != nil {
		t.Fatalf("testenv: the package's cluster did not start: %v", shared.err)
	}
	return shared.cluster
}

// packageName turns the test binary's name ("gate.test") into a cluster
// name prefix.
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
	if len(name) > 20 {
		name = strings.Trim(name[:20], "-")
	}
	if name == "" {
		return "testenv"
	}
	return name
}

func supervise() int {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...) }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		logf("cannot become a child subreaper (%v); leftovers of a crashed test may stay behind", errno)
	}
	self, err := os.Executable()
	if err != nil {
		logf("find the test binary: %v", err)
		return 1
	}
	runDir, err := os.MkdirTemp("", "krgeobuk-testenv-run-")
	if err != nil {
		logf("create run directory: %v", err)
		return 1
	}
	env := append(os.Environ(), envRunDir+"="+runDir)

	// Build before the tests start, so a cold build is not cut short by
	// go test's -timeout alarm (it starts inside m.Run).
	buildCtx, stopBuild := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	_, err = binaries.Ensure(buildCtx, binaries.Options{
		Log:       os.Stderr,
		BuildHint: "; go test's -timeout (10m by default) bounds this build too: run `make testenv` first, or pass -timeout 40m",
	})
	interrupted := buildCtx.Err() != nil
	stopBuild()
	if interrupted {
		logf("interrupted while building the control-plane binaries")
		_ = os.RemoveAll(runDir)
		return 130
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > 4096 {
			msg = msg[:4096] + " ..."
		}
		env = append(env, envBuildErr+"="+msg)
	}

	child := exec.Command(self, os.Args[1:]...)
	child.Env = env
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		logf("start the tests: %v", err)
		_ = os.RemoveAll(runDir)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	var waitErr error
wait:
	for {
		select {
		case sig := <-sigs:
			_ = child.Process.Signal(sig)
		case waitErr = <-done:
			break wait
		}
	}

	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case waitErr != nil:
		logf("wait for the tests: %v", waitErr)
		code = 1
	}
	if n, err := reapOrphans(30 * time.Second); err != nil || n > 0 {
		logf("the test process left %d processes behind; killed and reaped them (%v)", n, err)
	}
	if err := os.RemoveAll(runDir); err != nil {
		logf("remove %s: %v", runDir, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// reapOrphans kills every remaining child of this process (orphans of the
// test process re-parented to us, the subreaper) and reaps them, within
// bound. It returns how many it found.
func reapOrphans(bound time.Duration) (int, error) {
	self := os.Getpid()
	seen := map[int]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	err := retry.Do(ctx, retry.NewConstant(50*time.Millisecond), func(context.Context) error {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			seen[pid] = true
		}
		kids := childrenOf(self)
		if len(kids) == 0 {
			return nil
		}
		for _, pid := range kids {
			seen[pid] = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return retry.RetryableError(fmt.Errorf("%d children left", len(kids)))
	})
	return len(seen), err
}

// childrenOf lists the processes whose parent is pid, zombies included.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(n); ok && st.ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids
}

type procStat struct {
	comm  string
	state byte
	ppid  int
}

// readStat parses /proc/<pid>/stat: "pid (comm) state ppid ...", where comm
// may itself hold spaces and parentheses.
func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	return parseStat(string(data))
}

func parseStat(s string) (procStat, bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	return procStat{comm: s[open+1 : end], state: f[0][0], ppid: ppid}, true
}
