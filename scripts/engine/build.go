package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

// EngineVersion is the Dagger engine this tool builds; enginePatch is tied to it.
const EngineVersion = "v0.21.8"

// binaries are the programs built from the engine's source, by output name. The dagger CLI is
// built in the same source copy with the same flags, so it reuses the packages it shares with
// the engine from Go's build cache.
var binaries = map[string]string{
	"dagger":        "./cmd/dagger",
	"dagger-engine": "./cmd/engine",
	"dagger-init":   "./cmd/init",
	"dialstdio":     "./cmd/dialstdio",
	"dnsname":       "./cmd/dnsname",
}

// buildDir is where one build (version, Go toolchain, patch, binaries, distconsts and the CLI's
// stand-in modules) lives in the cache.
func buildDir(cache, distconstsDir, standins string) (string, error) {
	dc, err := hashDir(distconstsDir)
	if err != nil {
		return "", fmt.Errorf("distconsts: %w", err)
	}
	si, err := hashDir(standins)
	if err != nil {
		return "", fmt.Errorf("stand-ins: %w", err)
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s %s %s %q", enginePatch.Hash(), dc, si, binaries)))
	return filepath.Join(cache, "dagger-engine", EngineVersion, runtime.Version()+"-"+hex.EncodeToString(h[:])[:12]), nil
}

// build makes the engine binaries in dir/bin unless they are there already.
func build(ctx context.Context, dir, distconstsDir, standins string) error {
	stamp := filepath.Join(dir, "bin", ".complete")
	if _, err := os.Stat(stamp); err == nil {
		fmt.Printf("engine build: warm, %s\n", filepath.Join(dir, "bin"))
		return pruneOtherBuilds(dir)
	}
	if err := buildPreflight(dir).Check(); err != nil {
		return err
	}
	start := time.Now()
	step := func(name string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("engine build: %s: %w", name, err)
		}
		fmt.Printf("engine build: %-9s %6.1fs\n", name, time.Since(t).Seconds())
		return nil
	}
	src := filepath.Join(dir, "src")
	var modDir string
	if err := step("download", func() error {
		out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/dagger/dagger@"+EngineVersion).Output()
		if err != nil {
			return commandError(err)
		}
		var m struct{ Dir string }
		if err := json.Unmarshal(out, &m); err != nil {
			return err
		}
		modDir = m.Dir
		return nil
	}); err != nil {
		return err
	}
	if err := step("copy", func() error {
		if err := os.RemoveAll(src); err != nil {
			return err
		}
		if err := os.CopyFS(src, os.DirFS(modDir)); err != nil {
			return err
		}
		// The engine's go.mod points its replace at ./engine/distconsts, which the zip lacks.
		if err := os.CopyFS(filepath.Join(src, "engine", "distconsts"), os.DirFS(distconstsDir)); err != nil {
			return err
		}
		return os.CopyFS(filepath.Join(src, standinsDir), os.DirFS(standins))
	}); err != nil {
		return err
	}
	if err := step("patch", func() error {
		if err := enginePatch.Apply(src); err != nil {
			return err
		}
		args := []string{"mod", "edit", "-replace", "dagger.io/dagger=dagger.io/dagger@" + EngineVersion}
		for _, r := range enginePatch.DropRequire {
			args = append(args, "-droprequire", r)
		}
		for _, m := range sortedKeys(enginePatch.Standins) {
			args = append(args, "-replace", m+"=./"+standinsDir+"/"+enginePatch.Standins[m])
		}
		if err := goCmd(ctx, src, args...); err != nil {
			return err
		}
		return goCmd(ctx, src, "mod", "tidy")
	}); err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := step("compile", func() error {
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return err
		}
		ldflags := "-s -w -X github.com/dagger/dagger/engine.Version=" + EngineVersion +
			" -X github.com/dagger/dagger/engine.Tag=" + EngineVersion
		for _, name := range sortedKeys(binaries) {
			if err := goCmd(ctx, src, "build", "-trimpath", "-tags", "dfexcludepatterns,dfparents",
				"-ldflags", ldflags, "-o", filepath.Join(bin, name), binaries[name]); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("engine build: remove source copy: %w", err)
	}
	if err := os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("engine build: cold, %.1fs, %s\n", time.Since(start).Seconds(), bin)
	return pruneOtherBuilds(dir)
}

// buildPreflight is what a cold build needs: go, a writable build folder with
// room for the engine's source copy and binaries, and room in the Go build
// cache (estimates).
func buildPreflight(dir string) preflight.Step {
	return preflight.Step{
		Name:  "engine build",
		Rerun: "make engine-build",
		Tools: map[string]string{"go": ""},
		Dirs: append([]preflight.Dir{{Path: dir, Need: 2 * preflight.GiB, What: "the engine's source copy and binaries"}},
			preflight.GoCacheDir(3*preflight.GiB)...),
	}
}

// pruneOtherBuilds removes the other builds of this engine version (an older patch or Go
// version): only the current one is ever started.
func pruneOtherBuilds(dir string) error {
	siblings, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		return err
	}
	for _, e := range siblings {
		if p := filepath.Join(filepath.Dir(dir), e.Name()); p != dir {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("engine build: prune %s: %w", p, err)
			}
			fmt.Printf("engine build: removed the older build %s\n", e.Name())
		}
	}
	return nil
}

func goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}

func commandError(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}

// hashDir hashes the names and contents of the regular files under dir.
func hashDir(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
