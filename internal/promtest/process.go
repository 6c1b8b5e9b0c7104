package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
)

// runBound caps a one-shot tool run (promtool) that has no deadline of its own.
const runBound = 2 * time.Minute

// Run runs bin to completion in dir and returns its combined output.
func Run(ctx context.Context, dir, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, runBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Process is a long-running program a test started. It is stopped by the
// test's cleanup if the test has not stopped it.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs bin with args in the background. Output is kept for failure
// reports (Output), and t.Cleanup stops the process.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Own process group: a stop reaches any children too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Logf("stop %s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.Output()))
		}
	})
	return p
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Output is everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopGrace is how long a process gets to exit after SIGTERM.
const stopGrace = 10 * time.Second

// Stop sends SIGTERM and waits for the exit, killing the process group after
// a grace period. Stopping a stopped process is a no-op.
func (p *Process) Stop() error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s ignored SIGTERM for %s and was killed", p.Name, stopGrace)
	}
}

// errExited stops a readiness wait early: the process is gone for good.
var errExited = errors.New("process exited")

// WaitHTTP polls url until it answers 200, within budget. It gives up at once
// when the process has exited, and reports the last error and its output.
func (p *Process) WaitHTTP(ctx context.Context, url string, budget time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	err := retry.Do(ctx, retry.WithMaxDuration(budget, retry.NewConstant(100*time.Millisecond)), func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("%w: %v", errExited, p.err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			return retry.RetryableError(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s: status %d", url, resp.StatusCode)
			return retry.RetryableError(last)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready at %s (last: %v): %w\n%s", p.Name, url, last, err, tail(p.Output()))
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Cmdline returns the command line of a running process, as /proc shows it
// to every user of the machine.
func Cmdline(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(string(b), "\x00", " "), nil
}

// Binary returns the tool's cached binary, building it if needed, and fails
// the test with a hint when that is impossible.
func Binary(t testing.TB, tool Tool) string {
	t.Helper()
	bin, err := tool.Ensure(t.Context(), t.Logf)
	if err != nil {
		t.Fatalf("%v\n(the monitoring tools build from the Go module proxy: run `make monitoring-tools`)", err)
	}
	return bin
}
