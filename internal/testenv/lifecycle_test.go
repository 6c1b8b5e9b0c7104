package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
)

// processesMentioning returns the pids whose command line mentions s.
func processesMentioning(t *testing.T, s string) map[int]string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	found := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(s)) {
			continue
		}
		found[pid] = string(bytes.SplitN(cmdline, []byte{0}, 2)[0])
	}
	return found
}

// requireGone fails unless every pid has left the process table: neither
// running nor a zombie waiting to be reaped.
func requireGone(t *testing.T, pids map[int]string) {
	t.Helper()
	for pid, prog := range pids {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		require.True(t, errors.Is(err, os.ErrNotExist), "process %d (%s) is still in the process table: %s", pid, prog, stat)
	}
}

func requireNoDir(t *testing.T, dir string) {
	t.Helper()
	_, err := os.Stat(dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "%s still exists (stat error %v)", dir, err)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestStartRejectsBadOptionsBeforeAnythingChanges(t *testing.T) {
	cases := []struct {
		name string
		opts testenv.Options
		want string
	}{
		{"negative node count", testenv.Options{Nodes: -1}, "Nodes -1"},
		{"too many nodes", testenv.Options{Nodes: 21}, "Nodes 21"},
		{"upper-case name", testenv.Options{Name: "Bad_Name"}, `"Bad_Name"`},
		{"name starting with a dash", testenv.Options{Name: "-x"}, `"-x"`},
		{"name too long", testenv.Options{Name: strings.Repeat("a", 31)}, "at most 30"},
		{"missing directory", testenv.Options{Dir: "/nonexistent/testenv"}, `"/nonexistent/testenv"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.opts.Dir == "" {
				tc.opts.Dir = dir
			}
			c, err := testenv.Start(context.Background(), tc.opts)
			require.Nil(t, c)
			require.ErrorContains(t, err, tc.want)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "Start created files before rejecting its options")
		})
	}
}

func TestStopLeavesNoProcessOrDirectory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log bytes.Buffer
	c, err := testenv.Start(ctx, testenv.Options{Name: "stop", Nodes: 1, Dir: t.TempDir(), Log: io.MultiWriter(&log, testLog{t})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })

	// The admin key is a secret: only file paths may reach command lines
	// and logs.
	kc, err := clientcmd.Load(c.Kubeconfig())
	require.NoError(t, err)
	keyPEM := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo].ClientKeyData
	block, _ := pem.Decode(keyPEM)
	require.NotNil(t, block)
	keyB64 := base64.StdEncoding.EncodeToString(block.Bytes)[:32]

	procs := processesMentioning(t, c.Dir())
	progs := map[string]bool{}
	for pid, prog := range procs {
		progs[filepath.Base(prog)] = true
		ppid := readPPid(t, pid)
		require.Equal(t, os.Getpid(), ppid, "process %d (%s) is not a child of the test", pid, prog)
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		require.NoError(t, err)
		require.NotContains(t, string(cmdline), "PRIVATE KEY", "%s has key material on its command line", prog)
		require.NotContains(t, string(cmdline), keyB64, "%s has the admin key on its command line", prog)
	}
	require.NotContains(t, log.String(), "PRIVATE KEY")
	require.NotContains(t, log.String(), keyB64)
	require.Equal(t, map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true, "kwok": true}, progs)
	kubeconfig, err := os.ReadFile(c.KubeconfigPath())
	require.NoError(t, err)
	require.Equal(t, c.Kubeconfig(), kubeconfig)

	require.NoError(t, c.Stop())
	requireGone(t, procs)
	requireNoDir(t, c.Dir())
	require.NoError(t, c.Stop(), "a second Stop must be harmless")
}

func readPPid(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	require.FailNow(t, "no PPid in /proc/<pid>/status", "pid %d", pid)
	return 0
}

const helperEnv = "KRGEOBUK_TESTENV_HELPER"

// TestHelperProcess is not a test: TestDeathOfTheTestProcessLeavesNothing
// runs this test binary again with helperEnv set, and this function then
// plays a test package whose test panics or is interrupted while its
// cluster runs. Without helperEnv it returns at once.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	c := testenv.Shared(t)
	os.Stdout.WriteString("HELPER_READY " + c.Dir() + "\n")
	// Wait for the parent to note our processes.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	switch mode {
	case "panic":
		panic("helper panics on purpose")
	case "exit":
		os.Exit(3)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		<-ctx.Done()
		t.Fatal("the helper was not signalled")
	}
}

func TestDeathOfTheTestProcessLeavesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode       string
		signal     syscall.Signal // sent once the cluster is up; 0 for none
		wantStderr string
	}{
		{"panic", 0, "the test process left"},
		{"exit", 0, "the test process left"},
		{"sigint", syscall.SIGINT, "interrupt: stopping the package's cluster"},
		{"sigterm", syscall.SIGTERM, "terminated: stopping the package's cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			for _, kv := range os.Environ() {
				// This test process is itself supervised; the helper must
				// get a supervisor of its own.
				if !strings.HasPrefix(kv, "KRGEOBUK_TESTENV_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, helperEnv+"="+tc.mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			ready := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if dir, ok := strings.CutPrefix(sc.Text(), "HELPER_READY "); ok {
						ready <- dir
					}
				}
				_, _ = io.Copy(io.Discard, stdout)
			}()
			var dir string
			select {
			case dir = <-ready:
			case err := <-exited:
				require.FailNow(t, "helper exited before its cluster was up", "%v\n%s", err, stderr.String())
			case <-ctx.Done():
				require.FailNow(t, "helper's cluster not up in time", stderr.String())
			}
			procs := processesMentioning(t, dir)
			require.Len(t, procs, 5, "want the 5 cluster processes of %s", dir)

			_, err = stdin.Write([]byte("go\n"))
			require.NoError(t, err)
			if tc.signal != 0 {
				require.NoError(t, cmd.Process.Signal(tc.signal))
			}
			select {
			case err = <-exited:
			case <-ctx.Done():
				require.FailNow(t, "helper did not exit", stderr.String())
			}
			requireGone(t, procs)
			requireNoDir(t, dir)
			requireNoDir(t, filepath.Dir(dir))
			var exitErr *exec.ExitError
			require.ErrorAs(t, err, &exitErr, "the helper's failure must show in its exit status")
			require.Contains(t, stderr.String(), tc.wantStderr)
		})
	}
}
