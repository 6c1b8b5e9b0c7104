package image

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/layer"
)

// DaggerJSON is the part of dagger.json the image builds read.
type DaggerJSON struct {
	Name          string   `json:"name"`
	EngineVersion string   `json:"engineVersion"`
	Source        string   `json:"source"`
	Include       []string `json:"include"`
}

func readDaggerJSON(repo string) (DaggerJSON, error) {
	var cfg DaggerJSON
	b, err := os.ReadFile(filepath.Join(repo, "dagger.json"))
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("dagger.json: %w", err)
	}
	if cfg.Name == "" || cfg.Source == "" {
		return cfg, fmt.Errorf("dagger.json: name and source are required")
	}
	return cfg, nil
}

// Included reports whether rel (slash-separated, relative to the context
// directory) is loaded into the engine by dagger.json: dagger.json itself,
// the source folder, and the include paths, minus the "!**/pattern"
// exclusions, matched against every path element.
func (c DaggerJSON) Included(rel string) bool {
	in := rel == "dagger.json" || layer.Under(rel, c.Source)
	for _, p := range c.Include {
		if !strings.HasPrefix(p, "!") && layer.Under(rel, strings.TrimSuffix(p, "/")) {
			in = true
		}
	}
	if !in {
		return false
	}
	for _, p := range c.Include {
		pat, ok := strings.CutPrefix(p, "!**/")
		if !ok {
			continue
		}
		for _, el := range strings.Split(rel, "/") {
			if m, _ := path.Match(pat, el); m {
				return false
			}
		}
	}
	return true
}

// CopyModule copies what the engine loads of the repository at repo (the
// files git tracks plus untracked, not ignored ones, filtered by dagger.json)
// to dst, without the generated dagger.gen.go the engine removes first.
func CopyModule(repo, dst string) (DaggerJSON, error) {
	cfg, err := readDaggerJSON(repo)
	if err != nil {
		return cfg, err
	}
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return cfg, fmt.Errorf("git ls-files in %s: %w", repo, err)
	}
	n := 0
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" || !cfg.Included(rel) || rel == path.Join(cfg.Source, "dagger.gen.go") {
			continue
		}
		src := filepath.Join(repo, filepath.FromSlash(rel))
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		} else if err != nil {
			return cfg, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := copyFile(src, filepath.Join(dst, filepath.FromSlash(rel)), fi.Mode().Perm()); err != nil {
			return cfg, err
		}
		n++
	}
	if n == 0 {
		return cfg, fmt.Errorf("copy module %s: no files matched dagger.json", repo)
	}
	return cfg, nil
}
