package realnode_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
)

// TestStartRefusesBadOptions: bad input fails before anything starts (no
// cluster directory is created).
func TestStartRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	missing := &binaries.Set{Etcd: "/nonexistent/etcd"}
	tests := []struct {
		name string
		opts realnode.Options
		want string
	}{
		{"upper-case name", realnode.Options{Name: "Bad", Dir: dir}, `cluster name "Bad"`},
		{"name too long", realnode.Options{Name: "a-name-longer-than-twenty", Dir: dir}, "at most 20"},
		{"dir is a file", realnode.Options{Dir: file}, "is not a directory"},
		{"missing programs", realnode.Options{Dir: dir, Binaries: missing}, "programs missing or not executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := realnode.Start(context.Background(), tt.opts)
			require.Nil(t, c)
			require.ErrorContains(t, err, tt.want)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "nothing created beside the test's file")
		})
	}
}
