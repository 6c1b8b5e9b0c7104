package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"dagger/krgeobuk/internal/dagger"
)

func TestExplainedShowsWhyACommandFailed(t *testing.T) {
	long := make([]string, 100)
	for i := range long {
		long[i] = fmt.Sprintf("line %d", i+1)
	}
	tests := []struct {
		name    string
		err     error
		want    []string
		notWant []string
	}{
		{name: "module client", err: fmt.Errorf("sync: %w", &dagger.ExecError{Cmd: []string{"make", "fmt-check"}, ExitCode: 2,
			Stdout: "gofmt would change:\n", Stderr: "pipelines/x.go\nmake: *** [Makefile:33: fmt-check] Error 1\n"}),
			want: []string{"make fmt-check exited with code 2:\ngofmt would change:\npipelines/x.go\nmake: *** [Makefile:33: fmt-check] Error 1"}},
		{name: "long output keeps its end", err: &dagger.ExecError{Cmd: []string{"npm", "ci"}, ExitCode: 1, Stderr: strings.Join(long, "\n")},
			want: []string{"[… 40 lines before]\nline 41\n", "line 100"}, notWant: []string{"line 40\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := explained(tt.err).Error()
			for _, w := range tt.want {
				require.Contains(t, msg, w)
			}
			for _, w := range tt.notWant {
				require.NotContains(t, msg, w)
			}
		})
	}
	plain := errors.New("connection refused")
	require.Same(t, plain, explained(plain), "other errors pass through untouched")
}
