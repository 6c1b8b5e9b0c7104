// Package dbtest starts real MariaDB and Redis servers for tests.
//
// Each server is a Debian binary (mariadbd, redis-server) started by the test
// on a free loopback port with its own data directory under t.TempDir(). It is
// ready (answers an authenticated query) when Start returns, and it is stopped
// and its files removed by t.Cleanup. Passwords are random per server and are
// handed to the server through files, never on its command line.
//
// A missing binary fails the test with a message that names `make deps`; it
// never skips.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
)

// Budgets for waiting on a server. Generous because CI shares two cores with
// other suites; a healthy server answers in well under a second.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	pollInterval = 50 * time.Millisecond
)

// sbinDirs are searched after PATH; a variable so a test can empty it.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// lookBinary finds a server binary on PATH or in the sbin directories that a
// non-login root shell may lack on its PATH.
func lookBinary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	tb.Fatalf("dbtest: %s not found: install the Debian package %s with `make deps`", name, pkg)
	return ""
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before the server binds; callers retry the whole start on a bind error.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomSecret returns a password that is unique to one server.
func randomSecret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("dbtest: crypto/rand: %v", err))
	}
	return "pw-" + hex.EncodeToString(b)
}

// process is one running server binary with its log file.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	log  string
}

func startProcess(bin string, args []string, stdin string, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	// Kill the server if the test binary dies without running its cleanups,
	// so a crashed suite leaves no server holding a port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for a clean exit, then SIGKILL as a last
// resort; both waits are bounded.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return fmt.Errorf("pid %d ignored SIGTERM for %s and was killed", p.cmd.Process.Pid, stopTimeout)
	case <-time.After(stopTimeout):
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// logTail returns the end of the server log for failure messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 3000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// waitReady polls ping until it succeeds, the process exits, or the budget
// runs out. A process that exits is not retried: its log says why.
func waitReady(p *process, what string, ping func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(pollInterval), func(ctx context.Context) error {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready: %v", what, p.err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		if last = ping(pctx); last != nil {
			return retry.RetryableError(last)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && last != nil {
			err = fmt.Errorf("%s not ready after %s: %w", what, readyTimeout, last)
		}
		return fmt.Errorf("%w\n--- server log ---\n%s", err, p.logTail())
	}
	return nil
}

// isBindError tells whether a start failed because the port was taken
// between freePort and the server's bind.
func isBindError(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "do you already have another")
}

// guard serialises Start and Stop of one server.
type guard struct{ mu sync.Mutex }
