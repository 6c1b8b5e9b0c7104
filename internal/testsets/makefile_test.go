package testsets

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFmtCheckNeedsItsFileList runs the Makefile's fmt-check (the first target of
// check-container) in a scratch tree holding a file gofmt would change: it must fail whether git
// can list the files (gofmt's words) or not (git's words; it used to pass, gofmt reading nothing,
// in the check container of a git worktree, whose .git names a folder outside the tree).
func TestFmtCheckNeedsItsFileList(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	tests := []struct {
		name, want string
		git        bool
	}{
		{name: "a repository: gofmt names the file", git: true, want: "gofmt would change:\nbad.go"},
		{name: "no repository: git's error fails the target", want: "not a git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "Makefile"), makefile, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.go"), []byte("package bad\nvar  X = 1\n"), 0o644))
			if tt.git {
				for _, args := range [][]string{{"init", "-q"}, {"add", "bad.go"}} {
					require.NoError(t, exec.Command("git", append([]string{"-C", dir}, args...)...).Run())
				}
			}
			cmd := exec.Command("make", "--no-print-directory", "fmt-check")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "fmt-check must fail:\n%s", out)
			require.Contains(t, string(out), tt.want)
		})
	}
}
