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

// The amd64 images' keys as main computed them before arm64 variants
// existed (the nginx, mysql and redis ones are the folders of the warm cache;
// node's follows fakeRepo's lockfiles): their warm layouts stay valid.
func TestAmd64KeysDidNotMove(t *testing.T) {
	repo := fakeRepo(t)
	want := map[string]string{"node": "ea1e3d057a33f818", "nginx": "0ccb9bbd8e8a2924", "mysql": "e28376912c351b15", "redis": "a1d5cd81aafe5367"}
	s := &Bases{Repo: repo, Cache: "/cache"}
	for _, b := range BaseImages() {
		k, ok := want[b.Name]
		if !ok {
			continue
		}
		got, err := s.Key(b)
		require.NoError(t, err)
		require.Equal(t, k, got, "image %s", b.Name)
		p, err := s.LayoutPath(b)
		require.NoError(t, err)
		require.Equal(t, filepath.Join("/cache/dagger-images", b.Name, "bookworm-base-r1-"+k, "layout"), p)
	}
}

func TestArm64VariantsHaveTheirOwnKeysAndTheIndexTagCoversBoth(t *testing.T) {
	repo := fakeRepo(t)
	s := &Bases{Repo: repo, Cache: "/cache"}
	arm := map[string]Base{}
	for _, v := range Arm64Variants() {
		require.Equal(t, "arm64", v.Arch)
		require.NotContains(t, v.Packages, "npm", "%s: nothing runs npm emulated", v.Name)
		arm[v.Name] = v
	}
	require.Len(t, arm, 2)
	for _, b := range BaseImages() {
		tag, err := s.Tag(b)
		require.NoError(t, err)
		push, err := s.PushTag(b)
		require.NoError(t, err)
		v, ok := arm[b.Name]
		if !ok {
			require.Equal(t, tag, push, "%s is single-platform: pushed under its own tag", b.Name)
			continue
		}
		require.Regexp(t, regexp.MustCompile(`^bookworm-base-r\d+-[0-9a-f]{16}$`), push)
		require.NotEqual(t, tag, push, "%s: the index's tag names both variants", b.Name)
		vtag, err := s.Tag(v)
		require.NoError(t, err)
		require.Regexp(t, regexp.MustCompile(`^bookworm-arm64-base-r\d+-[0-9a-f]{16}$`), vtag)
		vp, err := s.LayoutPath(v)
		require.NoError(t, err)
		p, err := s.LayoutPath(b)
		require.NoError(t, err)
		require.NotEqual(t, p, vp)

		// the architecture alone moves the key
		same := b
		same.Arch = "arm64"
		k1, err := s.Key(b)
		require.NoError(t, err)
		k2, err := s.Key(same)
		require.NoError(t, err)
		require.NotEqual(t, k1, k2, "%s: arch is part of the key", b.Name)
	}
	// the node variant's tag follows its own recipe, not the npm lockfiles
	before, err := s.Tag(arm["node"])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "examples/auth-api/package-lock.json"), []byte("changed"), 0o644))
	after, err := s.Tag(arm["node"])
	require.NoError(t, err)
	require.Equal(t, before, after)
}
