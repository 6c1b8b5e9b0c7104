// Package offhosttest runs real off-host backup targets on loopback for
// tests: Debian's OpenSSH sshd in a private configuration (its own host key,
// authorized_keys and port; no system sshd is touched) and versitygw, an
// S3 gateway over a local folder, built once from the Go module proxy into
// $KRGEOBUK_CACHE/versitygw/<version> (make s3-server).
//
// Each server is a child process of the test on a free 127.0.0.1 port,
// ready when Start returns and stopped with everything it started (its whole
// process group) by t.Cleanup. WithFull serves from a small tmpfs mounted in
// a private mount namespace of the server, so the target fills up for real
// and the mount disappears with the server.
package offhosttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
)

// Budgets for a server to listen and to stop; generous for two busy cores.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	pollInterval = 50 * time.Millisecond
	startTries   = 3 // a free port can be taken before the server binds it
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is one server with its log, in its own process group so that
// stopping it also stops whatever it forked (sshd's per-connection children).
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

func startProcess(cmd *exec.Cmd, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
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

// stop signals the whole group, waits a bounded time, then kills it.
func (p *process) stop() error {
	pg := -p.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(pg, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			return fmt.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	}
	// Children that outlived the leader (a connection's sshd) go too.
	_ = syscall.Kill(pg, syscall.SIGKILL)
	return nil
}

func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// waitListening waits until addr accepts a TCP connection, the process
// exits, or the budget runs out.
func waitListening(p *process, what, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(pollInterval), func(ctx context.Context) error {
		if p.exited() {
			return fmt.Errorf("%s exited before it listened: %v", what, p.err)
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			last = err
			return retry.RetryableError(err)
		}
		return c.Close()
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && last != nil {
			err = fmt.Errorf("%s not listening on %s after %s: %w", what, addr, readyTimeout, last)
		}
		return fmt.Errorf("%w\n--- server log ---\n%s", err, p.logTail())
	}
	return nil
}

func isBindError(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "bind to port")
}

// inPrivateMount returns the command that runs argv with a tmpfs of size
// bytes mounted on dir, in a mount namespace of its own: the mount is
// invisible to everything else and vanishes with the process.
func inPrivateMount(tb testing.TB, dir string, size int64, argv []string) *exec.Cmd {
	tb.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		tb.Fatalf("offhosttest: unshare not found: install the Debian package util-linux (make deps)")
	}
	script := fmt.Sprintf(`mount -t tmpfs -o size=%d,mode=0700 krgeobuk-offhost-full "$1" && shift && exec "$@"`, size)
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", dir}, argv...)
	return exec.Command(unshare, args...)
}
