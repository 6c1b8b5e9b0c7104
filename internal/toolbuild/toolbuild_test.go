package toolbuild

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// versitygw's module is in the module cache on every machine that ran
// make s3-server, so these tests download nothing.
var pinned = Program{
	Name:    "versitygw",
	Module:  "github.com/versity/versitygw",
	Version: "v1.8.0",
	Sum:     "h1:au+wI+aybno/STsQiSm35Uu6Q6iK5MWReQxgO6SEMFc=",
	Package: "./cmd/versitygw",
	Rerun:   "make s3-server",
}

func TestPathIsKeyedByNameAndVersion(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("KRGEOBUK_CACHE", cache)
	bin, err := pinned.Path()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(cache, "versitygw", "v1.8.0", "versitygw"), bin)
}

func TestEnsure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name    string
		program Program
		built   bool // an executable is already at Path
		noGo    bool // PATH without go: any build would fail
		wantErr string
	}{
		{name: "a cached program is returned without building", program: pinned, built: true, noGo: true},
		{name: "a module whose checksum differs from the pin is refused before building",
			program: func() Program { p := pinned; p.Sum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; return p }(),
			wantErr: "does not match the pinned h1:AAAA"},
		{name: "without go the preflight names the step and its rerun command", program: pinned, noGo: true,
			wantErr: "go is not on PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KRGEOBUK_CACHE", t.TempDir())
			bin, err := tc.program.Path()
			require.NoError(t, err)
			if tc.built {
				require.NoError(t, os.MkdirAll(filepath.Dir(bin), 0o755))
				require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
			}
			if tc.noGo {
				t.Setenv("PATH", t.TempDir())
			}
			got, err := tc.program.Ensure(ctx, t.Logf)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NoFileExists(t, bin, "nothing is cached after a refusal")
				require.NoFileExists(t, bin+".tmp")
				return
			}
			require.NoError(t, err)
			require.Equal(t, bin, got)
		})
	}
}
