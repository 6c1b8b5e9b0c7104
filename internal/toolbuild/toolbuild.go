// Package toolbuild builds a pinned Go program from the Go module proxy into
// the version-keyed cache ($KRGEOBUK_CACHE/<name>/<version>/<name>), once:
// the servers the tests run (versitygw, the distribution registry) come from
// here, so `make test` pays each cold build once, outside any test timeout.
package toolbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

// Program is one Go program pinned by module version and go.sum hash.
type Program struct {
	// Name is the binary's name and the cache folder's.
	Name string
	// Module and Version select the source; Sum is the module's h1: hash as
	// `go mod download -json` reports it, checked before anything is built.
	Module, Version, Sum string
	// Package is the main package relative to the module root ("./cmd/x").
	Package string
	// Ldflags are passed to go build as they are.
	Ldflags string
	// Rerun is the command that builds it again (named in preflight errors).
	Rerun string
}

// CacheRoot is $KRGEOBUK_CACHE, or ~/.cache/krgeobuk without it.
func CacheRoot() (string, error) {
	if root := os.Getenv("KRGEOBUK_CACHE"); root != "" {
		return root, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "krgeobuk"), nil
}

// Path is where the built program is cached: <cache>/<name>/<version>/<name>.
// The build flags are fixed by the Program, so the version alone keys it.
func (p Program) Path() (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, p.Name, p.Version, p.Name), nil
}

// Built reports whether the cached program exists and is executable.
func (p Program) Built() (string, bool, error) {
	bin, err := p.Path()
	if err != nil {
		return "", false, err
	}
	return bin, IsExecutable(bin), nil
}

// Ensure builds the program into the cache unless it is there, and returns
// its path. The module's content must match Sum; the build uses the module's
// own go.mod and go.sum, read-only, with CGO_ENABLED=0 and -trimpath. logf
// reports a cold build; it may be nil.
func (p Program) Ensure(ctx context.Context, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, ok, err := p.Built()
	if err != nil || ok {
		return bin, err
	}
	// The preflight creates the cache folder and checks its space.
	step := preflight.Step{
		Name:  p.Name,
		Rerun: p.Rerun,
		Tools: map[string]string{"go": ""},
		Dirs: append([]preflight.Dir{{Path: filepath.Dir(bin), Need: 200 << 20, What: "the built " + p.Name}},
			preflight.GoCacheDir(preflight.GiB)...),
	}
	if err := step.Check(); err != nil {
		return "", err
	}
	logf("building %s %s from the Go module proxy (cached afterwards in %s)", p.Name, p.Version, filepath.Dir(bin))
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
	var out bytes.Buffer
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", p.Module+"@"+p.Version)
	dl.Env, dl.Dir, dl.Stdout, dl.Stderr = env, os.TempDir(), &out, &out
	if err := dl.Run(); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w: %s", p.Module, p.Version, err, out.String())
	}
	var info struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil || info.Error != "" {
		return "", fmt.Errorf("go mod download %s: %v %s", p.Module, err, info.Error)
	}
	if info.Sum != p.Sum {
		return "", fmt.Errorf("%s@%s: module checksum %s does not match the pinned %s", p.Module, p.Version, info.Sum, p.Sum)
	}
	// Built beside its final path and renamed, so a crash never leaves a
	// half-written binary that the next run would take as built.
	tmp := bin + ".tmp"
	out.Reset()
	args := []string{"build", "-trimpath", "-o", tmp}
	if p.Ldflags != "" {
		args = append(args, "-ldflags", p.Ldflags)
	}
	b := exec.CommandContext(ctx, "go", append(args, p.Package)...)
	b.Env, b.Dir, b.Stdout, b.Stderr = env, info.Dir, &out, &out
	if err := b.Run(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %w: %s", p.Name, err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("%s: %w", p.Name, err)
	}
	return bin, nil
}

// IsExecutable reports whether path is a regular file someone may execute.
func IsExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
