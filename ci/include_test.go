package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rootModule is the repository's own module, which the Dagger module imports.
const rootModule = "github.com/krgeobuk/krgeobuk-infra"

// TestDaggerIncludeCoversTheModulesBuild: the engine loads only what dagger.json's include list
// names, so a Go file or an embedded file of the repository that the module compiles, left out
// of that list, breaks every `dagger call` (and the Go SDK image build) while the host build,
// which sees the whole tree, passes. This checks the list against what `go list` says the
// module's build reads.
func TestDaggerIncludeCoversTheModulesBuild(t *testing.T) {
	raw, err := os.ReadFile("../dagger.json")
	require.NoError(t, err)
	var cfg struct {
		Include []string `json:"include"`
	}
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.NotEmpty(t, cfg.Include)

	needed := []string{"go.mod", "go.sum"}
	cmd := exec.Command("go", "list", "-deps", "-json=Module,Dir,GoFiles,EmbedFiles", ".")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dec := json.NewDecoder(&out)
	for {
		var p struct {
			Module              *struct{ Path string }
			Dir                 string
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if p.Module == nil || p.Module.Path != rootModule {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		require.NoError(t, err)
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	require.Greater(t, len(needed), 2, "the module imports the repository's packages")
	var missing []string
	for _, f := range needed {
		if !included(cfg.Include, f) {
			missing = append(missing, f)
		}
	}
	require.Empty(t, missing, "dagger.json's include leaves out files the module's build reads")

	require.False(t, included(cfg.Include, "charts/monitoring-stack/x_test.go"), "the matcher honours the exclusions")
	require.False(t, included(cfg.Include, "README.md"))
}

// included reports whether file (slash-separated, relative to the repository) passes the
// include list: some plain entry names it or a folder above it, and no "!" entry excludes it.
// The list uses only plain paths and "!**/<glob>" exclusions; anything else fails the test.
func included(patterns []string, file string) bool {
	in := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			glob, ok := strings.CutPrefix(neg, "**/")
			if !ok {
				panic("unsupported include pattern " + p)
			}
			for _, part := range strings.Split(file, "/") {
				if m, _ := path.Match(glob, part); m {
					return false
				}
			}
			continue
		}
		if strings.ContainsAny(p, "*?[") {
			panic("unsupported include pattern " + p)
		}
		if file == p || strings.HasPrefix(file, strings.TrimSuffix(p, "/")+"/") {
			in = true
		}
	}
	return in
}
