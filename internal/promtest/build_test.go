package promtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A module whose content does not match the pinned checksum is refused
// before anything is built or cached.
func TestEnsureRefusesAModuleWithTheWrongChecksum(t *testing.T) {
	t.Setenv("KRGEOBUK_CACHE", t.TempDir())
	tool := NodeExporter
	tool.Sum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	_, err := tool.Ensure(t.Context(), t.Logf)
	require.Error(t, err)
	require.Contains(t, err.Error(), "does not match the pinned")
	bin, err := tool.Path()
	require.NoError(t, err)
	_, statErr := os.Stat(bin)
	require.True(t, os.IsNotExist(statErr), "nothing cached at %s", bin)
}

// The cache key follows the recipe: a changed flag is a different binary.
func TestToolPathChangesWithTheRecipe(t *testing.T) {
	t.Setenv("KRGEOBUK_CACHE", t.TempDir())
	a, err := Prometheus.Path()
	require.NoError(t, err)
	changed := Prometheus
	changed.Tags = nil
	b, err := changed.Path()
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Equal(t, "prometheus", filepath.Base(a))
}

// A missing go or an unusable cache folder fails before anything is built,
// naming the step's make target.
func TestEnsureChecksItsPrerequisitesFirst(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	cases := []struct {
		name, cache, path, want string
	}{
		{"no go on PATH", t.TempDir(), t.TempDir(), "go is not on PATH (install Go and put it on PATH)"},
		{"cache under a file", filepath.Join(blocker, "cache"), os.Getenv("PATH"), "cannot create " + filepath.Join(blocker, "cache", "monitoring")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KRGEOBUK_CACHE", c.cache)
			t.Setenv("PATH", c.path)
			_, err := NodeExporter.Ensure(t.Context(), t.Logf)
			require.ErrorContains(t, err, "monitoring-tools (node_exporter): cannot start on this machine")
			require.ErrorContains(t, err, c.want)
			require.ErrorContains(t, err, "rerun just this step: make monitoring-tools")
		})
	}
}
