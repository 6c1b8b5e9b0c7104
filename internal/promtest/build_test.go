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
