// Package daggercli runs a Dagger module's functions through the real dagger CLI (v0.21.8, built
// by `engine build` with the engine) against the local engine, the way a user or a CI job runs
// them: `dagger call --progress=plain <function> <args>`. Module.Call has the shape of
// daggercall.Module's Call, so a test can use either.
package daggercli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	retry "github.com/sethvargo/go-retry"
)

// CLIEnv names the variable holding the dagger binary's path; `engine exec` sets it to the
// binary built with the running engine.
const CLIEnv = "KRGEOBUK_DAGGER_CLI"

// runnerHostEnv is how the dagger CLI is pointed at an engine it did not start.
const runnerHostEnv = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"

// ErrNoCLI is returned (wrapped) when no dagger binary is known.
var ErrNoCLI = errors.New("no dagger CLI: build it with `make engine-build` and run the tests through `engine exec` (make e2e does)")

// Module is a module directory called through the dagger CLI on one engine.
type Module struct {
	cli        string // the dagger binary
	dir        string // the module's directory (its dagger.json)
	runnerHost string // unix:///…/engine.sock
}

// Open checks the CLI binary and the module directory, and waits at most wait for the engine's
// socket to accept a connection: without an engine the CLI itself would retry for 10 minutes.
func Open(ctx context.Context, cli, runnerHost, dir string, wait time.Duration) (*Module, error) {
	if cli == "" {
		return nil, ErrNoCLI
	}
	if fi, err := os.Stat(cli); err != nil || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: %s is not an executable file", ErrNoCLI, cli)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "dagger.json")); err != nil {
		return nil, fmt.Errorf("module %s: %w", abs, err)
	}
	sock, ok := strings.CutPrefix(runnerHost, "unix://")
	if !ok || sock == "" {
		return nil, fmt.Errorf("engine address %q: want unix://PATH", runnerHost)
	}
	if err := waitForSocket(ctx, sock, wait); err != nil {
		return nil, fmt.Errorf("engine at %s: %w", runnerHost, err)
	}
	return &Module{cli: cli, dir: abs, runnerHost: runnerHost}, nil
}

// waitForSocket dials sock until it accepts, every 200ms, for at most wait.
func waitForSocket(ctx context.Context, sock string, wait time.Duration) error {
	var last error
	err := retry.Do(ctx, retry.WithMaxDuration(wait, retry.NewConstant(200*time.Millisecond)), func(ctx context.Context) error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", sock)
		if err != nil {
			last = err
			return retry.RetryableError(err)
		}
		return c.Close()
	})
	if err != nil && last != nil {
		return fmt.Errorf("not accepting connections after %s: %w", wait, last)
	}
	return err
}

// Dir is the module's directory.
func (m *Module) Dir() string { return m.dir }

// WithDir is the same CLI and engine on the module in another directory (a copy of it).
func (m *Module) WithDir(dir string) (*Module, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "dagger.json")); err != nil {
		return nil, fmt.Errorf("module %s: %w", abs, err)
	}
	c := *m
	c.dir = abs
	return &c, nil
}

// Call runs `dagger call --progress=plain --json <function> <args>` on the module. It returns
// what daggercall.Module's Call returns: a string result as is, any other result as JSON (a list
// of references, an object), nothing for a void function. A failed call's error carries the
// CLI's stderr (its progress and the function's error).
func (m *Module) Call(ctx context.Context, function string, args []string) (string, error) {
	stdout, err := m.Run(ctx, append([]string{"call", "--json", function}, args...)...)
	if err != nil {
		return "", err
	}
	out := strings.TrimSpace(stdout)
	if out == "" || out == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal([]byte(out), &s) == nil {
		return s, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(out)); err != nil {
		return "", fmt.Errorf("dagger call %s: not JSON on stdout: %w: %q", function, err, out)
	}
	return compact.String(), nil
}

// Run runs the dagger CLI with args (a command and its arguments, e.g. functions, or call fn
// --help) on the module with plain progress, and returns its stdout. The context bounds it.
func (m *Module) Run(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("dagger: no command")
	}
	argv := append([]string{args[0], "--progress=plain", "-m", m.dir}, args[1:]...)
	cmd := exec.CommandContext(ctx, m.cli, argv...)
	cmd.Dir = m.dir
	cmd.Env = append(os.Environ(), runnerHostEnv+"="+m.runnerHost,
		// no update checks, cloud nags or telemetry: this engine is offline
		"DO_NOT_TRACK=1", "DAGGER_NO_NAG=1", "NOTHANKS=1")
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return stdout.String(), fmt.Errorf("dagger %s: %w: %s\n\nthe CLI's output:\n%s", strings.Join(args, " "), err,
			finalError(stderr.String()), tail(stderr.String(), 200))
	}
	return stdout.String(), nil
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// finalError is what the CLI prints last after "Error: ": the function's own error, put first in
// a failed call's error so that a caller reading it (a deploy's JSON report) finds it before the
// progress lines.
func finalError(stderr string) string {
	plain := ansiEscape.ReplaceAllString(stderr, "")
	i := strings.LastIndex(plain, "\nError: ")
	if i < 0 {
		if !strings.HasPrefix(plain, "Error: ") {
			return "(no error line)"
		}
		i = -1
	}
	msg := plain[i+len("\nError: "):]
	if j := strings.LastIndex(msg, " [traceparent:"); j >= 0 {
		msg = msg[:j]
	}
	return strings.TrimSpace(msg)
}

// tail keeps the last n lines of s: the function's error is at the end of the CLI's output.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
