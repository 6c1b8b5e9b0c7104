package moduletest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercli"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggersession"
)

// caller is what the module tests need of a way to run a function: daggercli.Module (the real
// dagger CLI) and daggercall.Module (the CLI-free runner) both are one.
type caller interface {
	Call(ctx context.Context, function string, args []string) (string, error)
}

var (
	_ caller = (*daggercli.Module)(nil)
	_ caller = (*daggercall.Module)(nil)
)

// engineWait bounds the wait for the engine's socket: the CLI alone would retry for 10 minutes.
const engineWait = 30 * time.Second

// openCLI is the module at root called through the dagger CLI built with the running engine.
func openCLI(ctx context.Context, t *testing.T, root string) *daggercli.Module {
	t.Helper()
	host, err := daggersession.RunnerHost()
	require.NoError(t, err, "run through `make e2e`")
	m, err := daggercli.Open(ctx, os.Getenv(daggercli.CLIEnv), host, root, engineWait)
	require.NoError(t, err, "run through `make e2e` (engine exec gives the CLI's path)")
	return m
}

// moduleFunctions are the module's functions as the CLI names them.
var moduleFunctions = []string{"build", "check", "deploy", "history", "integration-test", "promote", "publish", "rollback", "status"}

// secretArgs are the arguments that carry credentials: each must be a Secret, so its value is
// given by a provider (env:, file:, cmd:) and never in clear on a command line.
var secretArgs = []string{"kubeconfig", "password", "source-password"}

// TestModuleThroughTheCLI runs the module through the real dagger CLI: its functions and their
// help (every argument documented, every credential a Secret), a secret kept out of a failing
// call's output, and check on this tree and on a broken copy.
func TestModuleThroughTheCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root := repoRoot(t)
	m := openCLI(ctx, t, root)

	t.Run("functions and their help", func(t *testing.T) {
		start := time.Now()
		out, err := m.Run(ctx, "functions")
		timed("dagger functions", start)
		require.NoError(t, err)
		// repo is the module's checkout field (a Directory), listed beside the functions
		require.ElementsMatch(t, append([]string{"repo"}, moduleFunctions...), daggercli.ParseFunctions(out), out)
		for _, fn := range moduleFunctions {
			help, err := m.Run(ctx, "call", fn, "--help")
			require.NoError(t, err)
			flags, err := daggercli.ParseHelp(help)
			require.NoError(t, err, help)
			if fn != "check" {
				require.NotEmpty(t, flags, "dagger call %s --help lists its arguments:\n%s", fn, help)
			}
			for _, f := range flags {
				require.NotEmpty(t, f.Description, "dagger call %s --help: --%s has no description:\n%s", fn, f.Name, help)
				if slices.Contains(secretArgs, f.Name) {
					require.Equal(t, "Secret", f.Type, "dagger call %s --%s is a Secret", fn, f.Name)
				}
			}
		}
	})

	t.Run("dagger check lists the module's check", func(t *testing.T) {
		out, err := m.Run(ctx, "check", "--list")
		require.NoError(t, err)
		require.Regexp(t, `(?m)^krgeobuk:check\s+Run the pre-merge checks any container can run`, ansiFree(out),
			"dagger check runs the check function, whose doc says what a container runs:\n%s", out)
	})

	t.Run("a missing required argument is refused by the CLI", func(t *testing.T) {
		_, err := m.Call(ctx, "deploy", []string{"--env", "staging"})
		require.ErrorContains(t, err, `"kubeconfig"`)
	})

	t.Run("a secret's value stays out of a failed call's output", func(t *testing.T) {
		const token = "krgeobuk-e2e-do-not-print-3f9a7c"
		t.Setenv("KRGEOBUK_E2E_KUBECONFIG", "apiVersion: v1\nkind: Config\nusers:\n- name: x\n  user:\n    token: "+token+"\n  - [broken\n")
		out, err := m.Call(ctx, "status", []string{"--env", "development", "--kubeconfig", "env:KRGEOBUK_E2E_KUBECONFIG"})
		require.ErrorContains(t, err, "kubeconfig: does not parse", "a kubeconfig that does not parse fails the call")
		require.NotContains(t, err.Error()+out, token)
	})

	images := loadBaseImages(t)
	defaults := loadDefaultImages(t)
	t.Run("check passes on this tree, in the default Go image's name and tag", func(t *testing.T) {
		// a copy with its own .git: in a git worktree .git is a file naming a folder outside the
		// tree, which the check's container does not have (git fails, and so does the check)
		clean, err := m.WithDir(copyTree(t, root))
		require.NoError(t, err)
		start := time.Now()
		_, err = clean.Call(ctx, "check", []string{"--go-image", defaults.Golang, "--target", "fmt-check", "--target", "shellcheck"})
		timed("check (cli: fmt-check, shellcheck)", start)
		require.NoError(t, err)
	})
	t.Run("check fails on a copy with a gofmt violation, with gofmt's words", func(t *testing.T) {
		broken := copyTree(t, root)
		bad := filepath.Join(broken, "pipelines", "zz_unformatted.go")
		require.NoError(t, os.WriteFile(bad, []byte("package pipelines\nvar  Unformatted   = 1\n"), 0o644))
		gitAdd(t, broken, "pipelines/zz_unformatted.go")
		bm, err := m.WithDir(broken)
		require.NoError(t, err)
		_, err = bm.Call(ctx, "check", []string{"--go-image", images.Golang, "--target", "fmt-check", "--target", "shellcheck"})
		require.ErrorContains(t, err, "gofmt would change:")
		require.ErrorContains(t, err, "pipelines/zz_unformatted.go")
		require.ErrorContains(t, err, "make fmt-check shellcheck exited with code 2")
	})
}

// copyTree copies the repository's tracked files into a fresh git repository (the module reads
// its directory from the git root).
func copyTree(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	require.NoError(t, err)
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		require.NoError(t, err)
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), b, fi.Mode().Perm()))
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
		require.NoError(t, exec.Command("git", append([]string{"-C", dst}, args...)...).Run())
	}
	return dst
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func ansiFree(s string) string { return ansiEscape.ReplaceAllString(s, "") }

func gitAdd(t *testing.T, dir, file string) {
	t.Helper()
	require.NoError(t, exec.Command("git", "-C", dir, "add", file).Run())
}
