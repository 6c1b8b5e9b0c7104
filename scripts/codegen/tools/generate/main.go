// Command generate regenerates the Dagger module's Go bindings (ci/dagger.gen.go,
// ci/internal/dagger, and the requirements codegen adds to ci/go.mod and
// ci/go.sum) without an engine, from the module proxy only: Dagger's own
// codegen, built once per version under $KRGEOBUK_CACHE/codegen/<version>,
// fed the engine's published SDL converted to the schema a module sees.
//
// With -check it generates into a scratch copy of the repository instead and
// fails, listing the files, when the committed bindings differ.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/scripts/codegen/tools/sdl2introspection/convert"
)

// generated are the paths codegen writes, relative to the repository root.
var generated = []string{"ci/dagger.gen.go", "ci/internal/dagger", "ci/go.mod", "ci/go.sum"}

func main() {
	repo := flag.String("repo", ".", "repository root (holds dagger.json)")
	check := flag.Bool("check", false, "compare a fresh generation with the committed files instead of writing")
	flag.Parse()
	if err := run(*repo, *check); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

type daggerJSON struct {
	Name          string `json:"name"`
	EngineVersion string `json:"engineVersion"`
	Source        string `json:"source"`
}

func run(repo string, check bool) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	var mod daggerJSON
	data, err := os.ReadFile(filepath.Join(repo, "dagger.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &mod); err != nil {
		return fmt.Errorf("dagger.json: %w", err)
	}
	if mod.Name == "" || mod.Source == "" || mod.EngineVersion == "" {
		return errors.New("dagger.json: name, source and engineVersion are required")
	}
	tools, err := toolsDir()
	if err != nil {
		return err
	}
	codegen, err := codegenBinary(tools, mod.EngineVersion)
	if err != nil {
		return err
	}
	sdl, err := schemaSDL(tools, mod.EngineVersion)
	if err != nil {
		return err
	}
	scratch, err := os.MkdirTemp("", "krgeobuk-codegen-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	intro, err := convert.Convert(sdl, mustRead(sdl), convert.ViewModule, mod.EngineVersion)
	if err != nil {
		return err
	}
	introPath := filepath.Join(scratch, "introspection.json")
	if err := os.WriteFile(introPath, intro, 0o644); err != nil {
		return err
	}

	if check {
		// The converter's other view must reproduce the published client
		// library exactly: the proof that the SDL-to-schema conversion is the
		// engine's own.
		if err := checkLibrary(tools, codegen, sdl, mod.EngineVersion, scratch); err != nil {
			return err
		}
	}

	target := repo
	if check {
		target = filepath.Join(scratch, "repo")
		if err := copyTracked(repo, target); err != nil {
			return err
		}
	}
	cmd := exec.Command(codegen, "generate-module",
		"--output", target,
		"--module-source-path", filepath.Join(target, mod.Source),
		"--module-name", mod.Name,
		"--introspection-json-path", introPath,
		"--lib-version", mod.EngineVersion)
	cmd.Dir = target
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("codegen generate-module: %w\n%s", err, log.String())
	}
	if !check {
		fmt.Println("generate: bindings written under", filepath.Join(repo, mod.Source))
		return nil
	}
	diff, err := compare(repo, target)
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		return fmt.Errorf("committed bindings differ from a fresh generation: %s\nrun `make generate` and commit the result", strings.Join(diff, ", "))
	}
	fmt.Println("generate-check: committed bindings match a fresh generation")
	return nil
}

// checkLibrary regenerates dagger.io/dagger at version from the client view
// of the SDL and compares it with the published module's generated files.
func checkLibrary(tools, codegen, sdl, version, scratch string) error {
	cmd := exec.Command("go", "mod", "download", "-json", "dagger.io/dagger@"+version)
	cmd.Dir = tools
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download dagger.io/dagger@%s: %w", version, err)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return fmt.Errorf("go mod download: no module directory in %s", out)
	}
	lib := filepath.Join(scratch, "lib")
	if err := copyDir(info.Dir, lib); err != nil {
		return err
	}
	intro, err := convert.Convert(sdl, mustRead(sdl), convert.ViewClient, version)
	if err != nil {
		return err
	}
	introPath := filepath.Join(scratch, "client.json")
	if err := os.WriteFile(introPath, intro, 0o644); err != nil {
		return err
	}
	gen := exec.Command(codegen, "generate-library", "--output", lib, "--introspection-json-path", introPath)
	gen.Dir = lib
	gen.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var log bytes.Buffer
	gen.Stdout, gen.Stderr = &log, &log
	if err := gen.Run(); err != nil {
		return fmt.Errorf("codegen generate-library: %w\n%s", err, log.String())
	}
	for _, f := range []string{"dagger.gen.go", filepath.Join("dag", "dag.gen.go")} {
		want, err := os.ReadFile(filepath.Join(info.Dir, f))
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(lib, f))
		if err != nil {
			return err
		}
		if !bytes.Equal(want, got) {
			return fmt.Errorf("the SDL converter's client view does not regenerate dagger.io/dagger@%s %s byte for byte; the converter is out of step with the engine", version, f)
		}
	}
	fmt.Printf("generate-check: the converter regenerates dagger.io/dagger@%s byte for byte\n", version)
	return nil
}

// copyDir copies a directory tree (the module cache's read-only files
// become writable copies).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func mustRead(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// toolsDir is this tools module's directory (the working directory of `go
// run` from the Makefile).
func toolsDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("locate the tools module: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func cacheRoot() string {
	if d := os.Getenv("KRGEOBUK_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "krgeobuk-cache")
	}
	return filepath.Join(home, ".cache", "krgeobuk")
}

// codegenBinary builds github.com/dagger/dagger/cmd/codegen at the version
// the tools module pins (which must be the module's engine version) once,
// into the cache, and returns its path.
func codegenBinary(tools, version string) (string, error) {
	pinned, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/dagger/dagger").Output()
	if err != nil {
		return "", fmt.Errorf("read the pinned dagger version: %w", err)
	}
	if v := strings.TrimSpace(string(pinned)); v != version {
		return "", fmt.Errorf("dagger.json wants engine %s but scripts/codegen/tools pins github.com/dagger/dagger %s; update the tools module", version, v)
	}
	dir := filepath.Join(cacheRoot(), "codegen", version)
	bin := filepath.Join(dir, "codegen")
	if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".codegen-*")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	fmt.Fprintf(os.Stderr, "generate: building codegen %s into %s (once; a few minutes cold)\n", version, dir)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp.Name(), "github.com/dagger/dagger/cmd/codegen")
	cmd.Dir = tools
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("build codegen: %w", err)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// schemaSDL returns the engine's published SDL inside the dagger module zip.
func schemaSDL(tools, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/dagger/dagger@"+version)
	cmd.Dir = tools
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download github.com/dagger/dagger@%s: %w", version, err)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download: no module directory in %s", out)
	}
	return filepath.Join(info.Dir, "docs", "docs-graphql", "schema.graphqls"), nil
}

// copyTracked copies the files git tracks (and the untracked, not ignored
// ones, so a check before a commit sees the work in progress) into dst.
func copyTracked(repo, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(repo, rel)
		st, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// compare lists the generated paths whose content differs between the two
// trees (a file on one side only counts).
func compare(a, b string) ([]string, error) {
	files := map[string]bool{}
	for _, root := range []string{a, b} {
		for _, g := range generated {
			err := filepath.WalkDir(filepath.Join(root, g), func(p string, d fs.DirEntry, err error) error {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				if err != nil {
					return err
				}
				if !d.IsDir() {
					rel, _ := filepath.Rel(root, p)
					files[rel] = true
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var diff []string
	for rel := range files {
		x, errA := os.ReadFile(filepath.Join(a, rel))
		y, errB := os.ReadFile(filepath.Join(b, rel))
		if errA != nil || errB != nil || !bytes.Equal(x, y) {
			diff = append(diff, rel)
		}
	}
	sort.Strings(diff)
	return diff, nil
}
