package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return root
}

func TestPatchApply(t *testing.T) {
	p := patch{
		Remove: []string{"gone"},
		Write:  map[string]string{"stub.go": "package stub\n"},
		Edits: []edit{
			{File: "a.go", Old: "old", New: "new", Count: 2},
			{File: "a.go", Old: "keep", New: "kept", Count: 1},
		},
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
		want    map[string]string
	}{
		{
			name:  "matching source is patched",
			files: map[string]string{"a.go": "old old keep", "gone/x.go": "x", "stub.go": "big"},
			want:  map[string]string{"a.go": "new new kept", "stub.go": "package stub\n"},
		},
		{
			name:    "an edit whose text changed fails naming the file and leaves the tree untouched",
			files:   map[string]string{"a.go": "old keep", "gone/x.go": "x", "stub.go": "big"},
			wantErr: `patch a.go: "old" occurs 1 times, want 2`,
			want:    map[string]string{"a.go": "old keep", "gone/x.go": "x", "stub.go": "big"},
		},
		{
			name:    "a missing file to remove fails before any change",
			files:   map[string]string{"a.go": "old old keep", "stub.go": "big"},
			wantErr: "patch: remove gone",
			want:    map[string]string{"a.go": "old old keep", "stub.go": "big"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			err := p.Apply(root)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				require.NoDirExists(t, filepath.Join(root, "gone"))
			}
			for name, text := range tt.want {
				b, err := os.ReadFile(filepath.Join(root, name))
				require.NoError(t, err, name)
				require.Equal(t, text, string(b), name)
			}
		})
	}
}

func TestPatchHashChangesWithPatch(t *testing.T) {
	changed := enginePatch
	changed.Edits = append([]edit{{File: "x", Old: "a", New: "b", Count: 1}}, enginePatch.Edits...)
	require.NotEqual(t, enginePatch.Hash(), changed.Hash())
	require.Equal(t, enginePatch.Hash(), enginePatch.Hash())
}

// TestEnginePatchMatchesSource applies the real patch to the real v0.21.8 source from the module
// proxy and checks that no engine package imports the terminal UI or a refused module (so no
// stand-in code runs in the engine), that only the CLI's packages (cmd/dagger, dagql/idtui) reach
// the three stand-ins, that Dang v2 is gone everywhere, and that the CLI keeps only the plain
// progress modes.
func TestEnginePatchMatchesSource(t *testing.T) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/dagger/dagger@"+EngineVersion).Output()
	require.NoError(t, err)
	var m struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &m))
	src := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.CopyFS(src, os.DirFS(m.Dir)))
	require.NoError(t, enginePatch.Apply(src))

	cliOnly := append(sortedKeys(enginePatch.Standins), "github.com/dagger/dagger/dagql/idtui")
	var offenders []string
	require.NoError(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, src+"/")
		cli := strings.HasPrefix(rel, "cmd/dagger/") || strings.HasPrefix(rel, "dagql/idtui/")
		bad := slices.Clone(enginePatch.DropRequire)
		if !cli {
			bad = append(bad, cliOnly...)
		}
		for _, imp := range bad {
			if strings.Contains(string(b), `"`+imp+`"`) || strings.Contains(string(b), `"`+imp+`/`) {
				offenders = append(offenders, rel+" imports "+imp)
			}
		}
		return nil
	}))
	require.Empty(t, offenders)

	main, err := os.ReadFile(filepath.Join(src, "cmd", "dagger", "main.go"))
	require.NoError(t, err)
	require.Contains(t, string(main), plainProgress+"\tswitch progress {", "tty, dots and report print as plain")
	for module, dir := range enginePatch.Standins {
		modFile, err := os.ReadFile(filepath.Join("standins", dir, "go.mod"))
		require.NoError(t, err, "stand-in for %s", module)
		require.Contains(t, string(modFile), "module "+module+"\n")
	}
}
