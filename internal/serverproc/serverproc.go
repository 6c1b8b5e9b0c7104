// Package serverproc runs a test's server binary (MariaDB, Redis, sshd,
// versitygw) as a child process with its output in a log file: started in a
// process group of its own and killed if the test binary dies, ready when a
// caller's ping answers within a bound, stopped with everything it forked.
// internal/dbtest and internal/offhosttest share it.
package serverproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sethvargo/go-retry"
)

// Budgets for a server to get ready and to stop: generous, because CI shares
// two cores with other suites; a healthy server answers in well under a second.
const (
	ReadyTimeout = 60 * time.Second
	StopTimeout  = 30 * time.Second
	PollInterval = 50 * time.Millisecond
	pingTimeout  = 2 * time.Second
	logTailBytes = 12000
)

// FreePort asks the kernel for a free loopback port. Another process may take
// it before the server binds; callers retry the whole start on a bind error.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is one running server with its log file.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	log  string
}

// Start runs cmd with its stdout and stderr appended to logPath, in its own
// process group (so Stop also stops what it forks, such as sshd's
// per-connection children), killed if the test binary dies without running
// its cleanups, so a crashed suite leaves no server holding a port.
func Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := Spawn(cmd); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// spawner forks every server from one goroutine locked to an OS thread that
// never exits. Pdeathsig is tied to the forking THREAD, not the process: a
// server forked from an ordinary thread is killed when the Go runtime later
// discards that thread, which it does to any thread a goroutine left locked
// (as code that switches a thread into another network namespace must).
var spawner = make(chan spawnReq)

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func init() {
	go func() {
		runtime.LockOSThread()
		for r := range spawner {
			r.res <- r.cmd.Start()
		}
	}()
}

// Spawn starts cmd from the spawner thread: use it for any command whose
// SysProcAttr sets Pdeathsig.
func Spawn(cmd *exec.Cmd) error {
	res := make(chan error, 1)
	spawner <- spawnReq{cmd: cmd, res: res}
	return <-res
}

// Exited reports whether the server has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group and waits for the server to exit,
// then SIGKILL as a last resort (an error: the server ignored SIGTERM); both
// waits are bounded. Whatever the server forked and left goes too.
func (p *Process) Stop() error {
	pg := -p.cmd.Process.Pid
	defer func() { _ = syscall.Kill(pg, syscall.SIGKILL) }() // children that outlived the leader
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(StopTimeout):
	}
	_ = syscall.Kill(pg, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("pid %d ignored SIGTERM for %s and was killed", p.cmd.Process.Pid, StopTimeout)
	case <-time.After(StopTimeout):
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// LogTail returns the end of the server log for failure messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}

// WaitReady polls ping (each call bounded) until it succeeds, the server
// exits, or ReadyTimeout runs out. A server that exits is not retried: the
// error carries the end of its log, which says why.
func WaitReady(p *Process, what string, ping func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(PollInterval), func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("%s exited before it was ready: %v", what, p.err)
		}
		pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
		defer pcancel()
		if last = ping(pctx); last != nil {
			return retry.RetryableError(last)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && last != nil {
			err = fmt.Errorf("%s not ready after %s: %w", what, ReadyTimeout, last)
		}
		return fmt.Errorf("%w\n--- server log ---\n%s", err, p.LogTail())
	}
	return nil
}

// Listening is a WaitReady ping that succeeds once addr accepts a TCP
// connection.
func Listening(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// Pid is the server's process id (its /proc/<pid>/root, say).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// FirstChild is the pid of pid's oldest child still running, or 0 when it has
// none (yet): how a caller finds the process an `unshare --fork` (or tini)
// started inside fresh namespaces.
func FirstChild(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
