package main

import (
	"errors"
	"fmt"
	"strings"

	"dagger/krgeobuk/internal/dagger"
)

// outputLines is how much of a failed command's output an error carries.
const outputLines = 60

// explained adds the end of a failed command's output to err. Without it the
// caller of a function (`dagger call`, a CI log) reads only "exit code: 1".
// The engine has already scrubbed secret values from that output.
func explained(err error) error {
	var cmd []string
	var code int
	var stdout, stderr string
	var failed *dagger.ExecError
	if !errors.As(err, &failed) {
		return err
	}
	cmd, code, stdout, stderr = failed.Cmd, failed.ExitCode, failed.Stdout, failed.Stderr
	out := strings.TrimSpace(strings.TrimSpace(stdout) + "\n" + strings.TrimSpace(stderr))
	return fmt.Errorf("%s exited with code %d:\n%s", strings.Join(cmd, " "), code, lastLines(out, outputLines))
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[… %d lines before]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}
