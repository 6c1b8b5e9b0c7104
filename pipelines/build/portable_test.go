package build_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

func TestForeignPlatforms(t *testing.T) {
	require.Empty(t, build.ForeignPlatforms([]string{""}, "linux/amd64"), "the engine's own platform")
	require.Empty(t, build.ForeignPlatforms([]string{"linux/amd64"}, "linux/amd64"))
	require.Equal(t, []string{"linux/arm64"}, build.ForeignPlatforms([]string{"linux/amd64", "linux/arm64"}, "linux/amd64"))
	require.Equal(t, []string{"linux/amd64"}, build.ForeignPlatforms([]string{"linux/amd64", "linux/arm64"}, "linux/arm64"))
}

func TestCheckLockfilePortable(t *testing.T) {
	example := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", dir, "package-lock.json"))
		require.NoError(t, err)
		return b
	}
	arm := []string{"linux/arm64"}
	for _, tc := range []struct {
		name    string
		foreign []string
		lock    []byte
		want    []string // in the error; none: accepted
	}{
		{name: "the example API", foreign: arm, lock: example("auth-api")},
		// esbuild's and rollup's per-platform packages are dev dependencies: they build, they do not ship
		{name: "the example SPA", foreign: arm, lock: example("spa")},
		{name: "a prebuilt production binary", foreign: arm,
			lock: []byte(`{"lockfileVersion":3,"packages":{"":{"name":"api"},"node_modules/@swc/core-linux-x64-gnu":{"version":"1.0.0","cpu":["x64"],"os":["linux"],"optional":true}}}`),
			want: []string{"build auth-server for linux/arm64", "node_modules/@swc/core-linux-x64-gnu", "prebuilt for one CPU or OS"}},
		{name: "an OS-only production package", foreign: arm,
			lock: []byte(`{"lockfileVersion":2,"packages":{"node_modules/fsevents":{"version":"2.3.3","os":["darwin"]}}}`),
			want: []string{"node_modules/fsevents"}},
		{name: "the same, built only natively", lock: []byte(`{"lockfileVersion":3,"packages":{"node_modules/x":{"cpu":["x64"]}}}`)},
		{name: "no packages map", foreign: arm, lock: []byte(`{"lockfileVersion":1,"dependencies":{}}`),
			want: []string{"no packages map"}},
		{name: "not JSON", foreign: arm, lock: []byte(`{`), want: []string{"package-lock.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := build.CheckLockfilePortable("auth-server", tc.foreign, tc.lock)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestCheckAddonsPortable(t *testing.T) {
	arm := []string{"linux/arm64"}
	require.NoError(t, build.CheckAddonsPortable("auth-server", arm, ""))
	require.NoError(t, build.CheckAddonsPortable("auth-server", arm, "node_modules/a/index.js\nnode_modules/b/node.md\n"))
	require.NoError(t, build.CheckAddonsPortable("auth-server", nil, "node_modules/bcrypt/lib/binding/napi-v3/bcrypt_lib.node\n"),
		"a native build copies its own addons")
	err := build.CheckAddonsPortable("auth-server", arm, "node_modules/z.js\nnode_modules/bcrypt/lib/binding/napi-v3/bcrypt_lib.node\nnode_modules/argon2/build/Release/argon2.node\n")
	require.EqualError(t, err, "build auth-server for linux/arm64: production dependencies hold native addons compiled for the engine's platform "+
		"(node_modules/argon2/build/Release/argon2.node, node_modules/bcrypt/lib/binding/napi-v3/bcrypt_lib.node); the module builds on the engine's platform "+
		"and copies node_modules, so build this service on an engine of that platform, or leave the platform out")
}
