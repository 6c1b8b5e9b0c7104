package realnode_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
)

const envKilledHelper = "KRGEOBUK_REALNODE_TEST_KILLED_HELPER"

// TestHelperStartAndHang is the process TestKilledTestProcess kills: it
// starts a node in the folder it is given, says so, and waits.
func TestHelperStartAndHang(t *testing.T) {
	dir := os.Getenv(envKilledHelper)
	if dir == "" {
		t.Skip("helper of TestKilledTestProcess, run by it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := realnode.Start(ctx, realnode.Options{Name: "killed", Dir: dir})
	require.NoError(t, err)
	fmt.Printf("READY %s\n", c.Dir())
	select {} // until SIGKILL
}

// TestKilledTestProcess: a test process killed outright (SIGKILL: no
// cleanup runs) takes its node's processes with it, and the next
// SweepStale (every Start runs one) removes the cgroups and the cluster
// directory it left.
func TestKilledTestProcess(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-test.run=^TestHelperStartAndHang$")
	cmd.Env = append(os.Environ(), envKilledHelper+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- d
			} else {
				fmt.Fprintln(os.Stderr, "helper:", sc.Text())
			}
		}
		close(ready)
	}()
	var clusterDir string
	select {
	case clusterDir = <-ready:
	case <-time.After(5 * time.Minute):
		t.Fatal("the helper's node did not start within 5 minutes")
	}
	require.NotEmpty(t, clusterDir, "the helper exited before its node was ready")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	// The node's programs name the cluster directory on their command lines.
	require.NoError(t, poll(context.Background(), 30*time.Second, func(context.Context) error {
		if pids := processesMentioning(clusterDir); len(pids) > 0 {
			return fmt.Errorf("processes %v of the killed node still run", pids)
		}
		return nil
	}))
	owner := fmt.Sprintf("-p%d", cmd.Process.Pid)
	require.NotEmpty(t, nodeCgroups(t, owner), "the killed node's cgroups stay until swept")
	require.DirExists(t, clusterDir)

	require.NoError(t, realnode.SweepStale(dir))
	require.Empty(t, nodeCgroups(t, owner))
	require.NoDirExists(t, clusterDir)
}

func processesMentioning(s string) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

// nodeCgroups lists the cgroups, in any hierarchy, of nodes whose names end
// with the owner suffix.
func nodeCgroups(t *testing.T, owner string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "krgeobuk-realnode-killed-") && strings.HasSuffix(d.Name(), owner) {
			out = append(out, p)
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), "krgeobuk-realnode-") {
			return filepath.SkipDir // another node's tree
		}
		return nil
	})
	return out
}
