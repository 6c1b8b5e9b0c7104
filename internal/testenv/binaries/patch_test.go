package binaries

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	p := Patch{
		Write: map[string]string{"pkg/new.go": "package pkg\n"},
		Edits: []Edit{
			{File: "pkg/a.go", Old: "old", New: "new", Count: 2},
			{File: "pkg/a.go", Old: "keep", New: "kept", Count: 1},
		},
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
		want    map[string]string
		absent  []string
	}{
		{
			name:  "matching source is patched",
			files: map[string]string{"pkg/a.go": "old old keep"},
			want:  map[string]string{"pkg/a.go": "new new kept", "pkg/new.go": "package pkg\n"},
		},
		{
			name:    "an edit whose text changed fails naming the file and leaves the tree untouched",
			files:   map[string]string{"pkg/a.go": "old keep"},
			wantErr: `patch pkg/a.go: "old" occurs 1 times, want 2 (source changed: re-check the patch)`,
			want:    map[string]string{"pkg/a.go": "old keep"},
			absent:  []string{"pkg/new.go"},
		},
		{
			name:    "a missing file to edit fails before any change",
			files:   map[string]string{"pkg/b.go": "x"},
			wantErr: "patch pkg/a.go:",
			want:    map[string]string{"pkg/b.go": "x"},
			absent:  []string{"pkg/new.go"},
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
			}
			for name, text := range tt.want {
				b, err := os.ReadFile(filepath.Join(root, name))
				require.NoError(t, err, name)
				require.Equal(t, text, string(b), name)
			}
			for _, name := range tt.absent {
				require.NoFileExists(t, filepath.Join(root, name))
			}
		})
	}
}

func TestPatchHashChangesWithThePatch(t *testing.T) {
	changed := knpPatch
	changed.Edits = append([]Edit{{File: "x", Old: "a", New: "b", Count: 1}}, knpPatch.Edits...)
	require.NotEqual(t, knpPatch.Hash(), changed.Hash())
	require.Equal(t, knpPatch.Hash(), knpPatch.Hash())
}

// The patch applies to the kube-network-policies version the tools module
// pins, leaves no native queue expression in the rules, compiles against the
// tools module's dependency versions, and the expression its rules now carry
// is what the kernel's nft_compat reads as NFQUEUE revision 3: the queue
// number, one queue in total, and the bypass flag exactly when fail-open.
func TestKNPPatch(t *testing.T) {
	repo, err := FindRepoRoot(mustGetwd(t))
	require.NoError(t, err)
	var ts Toolset
	for _, s := range Toolsets() {
		if s.Name == "knp" {
			ts = s
		}
	}
	require.NotNil(t, ts.Patch, "the knp toolset is patched")
	version, _, err := identify(repo, ts)
	require.NoError(t, err)
	modDir := filepath.Join(repo, ts.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	work, cleanup, err := patchedWorkspace(ctx, Options{Go: "go"}, ts, version, modDir, t.TempDir())
	require.NoError(t, err, "the patch applies to %s %s", ts.Module, version)
	defer cleanup()
	src := filepath.Join(filepath.Dir(work), "src")
	pkgDir := filepath.Join(src, "pkg", "networkpolicy")
	var code strings.Builder
	files, err := filepath.Glob(filepath.Join(pkgDir, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			// Upstream's tests are not ours to run; only ours goes in.
			require.NoError(t, os.Remove(f))
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		code.Write(b)
	}
	require.NotContains(t, code.String(), "expr.Queue{", "no rule may keep the native queue expression (no nft_queue in this kernel)")
	require.Equal(t, 3, strings.Count(code.String(), "xtNFQueue(uint16("), "the controller's two rule sets and the DNS agent queue through the xtables target")

	probe, err := os.ReadFile(filepath.Join("testdata", "xtqueue_test.go.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(pkgDir, "zz_krgeobuk_xtqueue_test.go"), probe, 0o644))
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-run", "^TestKrgeobukXTNFQueue$", ts.Module+"/pkg/networkpolicy")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK="+work, "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the patched package and its probe compile and run:\n%s", out)
	var got []string
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(line, "XTQUEUE "); ok {
			got = append(got, strings.TrimSpace(rest))
		}
	}
	require.Equal(t, []string{
		`bypass=false expr="target\x00" target="NFQUEUE\x00" rev=3 infolen=8 queuenum=100 queues_total=1 flags=0`,
		`bypass=true expr="target\x00" target="NFQUEUE\x00" rev=3 infolen=8 queuenum=101 queues_total=1 flags=1`,
	}, got)
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}
