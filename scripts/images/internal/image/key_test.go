package image

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeRepo holds the files the cache keys read.
func fakeRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	files := map[string]string{
		"dagger.json": `{"name":"krgeobuk","source":"ci","engineVersion":"v0.21.8"}`,
		"go.mod":      "module x\n", "go.sum": "", "ci/go.mod": "module dagger/krgeobuk\n", "ci/go.sum": "",
		"examples/auth-api/package.json": "{}", "examples/auth-api/package-lock.json": "{}",
		"examples/spa/package.json": "{}", "examples/spa/package-lock.json": "{}",
	}
	for p, body := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(repo, p), []byte(body), 0o644))
	}
	return repo
}

func TestCacheKeysFollowTheirInputs(t *testing.T) {
	node := BaseImages()[0]
	require.Equal(t, "node", node.Name)
	cases := []struct {
		name   string
		change string // file rewritten in the repository
		key    func(t *testing.T, repo string) string
		moves  bool
	}{
		{"node image follows the API lockfile", "examples/auth-api/package-lock.json", func(t *testing.T, repo string) string {
			k, err := (&Bases{Repo: repo}).Key(node)
			require.NoError(t, err)
			return k
		}, true},
		{"node image ignores the module's go.sum", "ci/go.sum", func(t *testing.T, repo string) string {
			k, err := (&Bases{Repo: repo}).Key(node)
			require.NoError(t, err)
			return k
		}, false},
		{"go-sdk image follows the module's go.sum", "ci/go.sum", func(t *testing.T, repo string) string {
			k, err := goSDKKey(t, repo)
			require.NoError(t, err)
			return k
		}, true},
		{"go-sdk image follows the root go.mod", "go.mod", func(t *testing.T, repo string) string {
			k, err := goSDKKey(t, repo)
			require.NoError(t, err)
			return k
		}, true},
		{"go-sdk image ignores the examples", "examples/spa/package-lock.json", func(t *testing.T, repo string) string {
			k, err := goSDKKey(t, repo)
			require.NoError(t, err)
			return k
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fakeRepo(t)
			before := c.key(t, repo)
			require.NoError(t, os.WriteFile(filepath.Join(repo, c.change), []byte("changed"), 0o644))
			after := c.key(t, repo)
			if c.moves {
				require.NotEqual(t, before, after, "changing %s must give a new cache key", c.change)
			} else {
				require.Equal(t, before, after, "changing %s must not rebuild", c.change)
			}
		})
	}
}

func goSDKKey(t *testing.T, repo string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	codegen := filepath.Join(dir, "codegen")
	require.NoError(t, os.WriteFile(codegen, []byte("binary"), 0o755))
	goroot := filepath.Join(dir, "go")
	require.NoError(t, os.MkdirAll(goroot, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(goroot, "VERSION"), []byte("go1.26.8\ntime x\n"), 0o644))
	return (&GoSDK{Repo: repo, Codegen: codegen, GoRoot: goroot}).Key()
}

func TestTagsAreExact(t *testing.T) {
	repo := fakeRepo(t)
	for _, b := range BaseImages() {
		tag, err := (&Bases{Repo: repo}).Tag(b)
		require.NoError(t, err)
		require.Regexp(t, regexp.MustCompile(`^bookworm-base-r\d+-[0-9a-f]{16}$`), tag, "image %s", b.Name)
	}
}

func TestGoSDKNeedsCodegen(t *testing.T) {
	_, err := (&GoSDK{Repo: fakeRepo(t), Cache: t.TempDir()}).Key()
	require.ErrorContains(t, err, "run `make generate` first")
}
