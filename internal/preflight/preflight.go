// Package preflight checks what a heavy build step needs before it starts:
// programs on PATH, Debian packages, a writable folder to build into and
// enough free disk there, so a fresh machine fails in seconds with the reason
// and the command that reruns just that step, not after half an hour.
//
// The tool modules (scripts/engine, scripts/images) use it through a replace
// of the root module.
package preflight

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// GiB is a gibibyte, for disk estimates.
const GiB = uint64(1) << 30

// Step is what one heavy step needs.
type Step struct {
	// Name names the step in messages ("engine build").
	Name string
	// Rerun is the command that runs just this step ("make engine-build").
	Rerun string
	// Tools must be on PATH; the value names the Debian package that
	// provides it ("" for the Go toolchain, which is not installed by apt).
	Tools map[string]string
	// Packages are Debian packages that must be installed (for what is not
	// a program on PATH, e.g. CNI plugins).
	Packages []string
	// Dirs are folders the step writes into: each is created if missing and
	// must be writable with at least Need bytes free.
	Dirs []Dir
	// Custom are the step's own checks; each returns the problem or nil.
	Custom []func() error
}

// Dir is a folder a step writes into and the free space it needs there.
type Dir struct {
	Path string
	// Need is an estimate of what the step writes there, in bytes.
	Need uint64
	// What says what the space is for ("the engine's source copy and binaries").
	What string
}

// System is what the checks ask of the machine; tests replace parts of it.
type System struct {
	LookPath func(string) (string, error)
	// Installed reports whether a Debian package is installed.
	Installed func(pkg string) (bool, error)
	// Free returns the bytes available to this user on path's filesystem.
	Free func(path string) (uint64, error)
	// MkdirAll creates a folder; Probe proves it writable.
	MkdirAll func(string) error
	Probe    func(dir string) error
}

// Host is the real machine.
func Host() System {
	return System{
		LookPath:  exec.LookPath,
		Installed: dpkgInstalled,
		Free:      statfsFree,
		MkdirAll:  func(p string) error { return os.MkdirAll(p, 0o755) },
		Probe:     probeWritable,
	}
}

// Check runs every check of s on the host.
func (s Step) Check() error { return s.CheckOn(Host()) }

// CheckOn runs every check of s and reports all problems at once, naming the
// step and the command that reruns it.
func (s Step) CheckOn(sys System) error {
	var problems []string
	for _, tool := range slices.Sorted(maps.Keys(s.Tools)) {
		if _, err := sys.LookPath(tool); err != nil {
			hint := "install Go and put it on PATH"
			if pkg := s.Tools[tool]; pkg != "" {
				hint = "Debian package " + pkg + ": run make deps"
			}
			problems = append(problems, fmt.Sprintf("%s is not on PATH (%s)", tool, hint))
		}
	}
	for _, pkg := range s.Packages {
		ok, err := sys.Installed(pkg)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("cannot tell whether Debian package %s is installed: %v", pkg, err))
		case !ok:
			problems = append(problems, fmt.Sprintf("Debian package %s is not installed (run make deps)", pkg))
		}
	}
	for _, d := range s.Dirs {
		if err := sys.MkdirAll(d.Path); err != nil {
			problems = append(problems, fmt.Sprintf("cannot create %s: %v", d.Path, err))
			continue
		}
		if err := sys.Probe(d.Path); err != nil {
			problems = append(problems, fmt.Sprintf("%s is not writable: %v", d.Path, err))
			continue
		}
		if d.Need == 0 {
			continue
		}
		free, err := sys.Free(d.Path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("cannot read the free space of %s: %v", d.Path, err))
			continue
		}
		if free < d.Need {
			problems = append(problems, fmt.Sprintf("%s has %s free; %s needs about %s there (an estimate) for %s",
				d.Path, human(free), s.Name, human(d.Need), d.What))
		}
	}
	for _, check := range s.Custom {
		if err := check(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: cannot start on this machine:\n  - %s\nfix the above, then rerun just this step: %s",
		s.Name, strings.Join(problems, "\n  - "), s.Rerun)
}

func human(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/float64(GiB))
}

func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".preflight-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// dpkgInstalled asks dpkg; a package dpkg does not know is not installed.
func dpkgInstalled(pkg string) (bool, error) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return false, fmt.Errorf("dpkg-query not found (this tooling expects Debian): %w", err)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dpkg-query %s: %w", pkg, err)
	}
	return strings.Contains(string(out), "install ok installed"), nil
}

// GoCache is the Go build cache folder (`go env GOCACHE`), where every build
// step's compiled packages go; "" when go is missing (the tool check says so).
func GoCache() string {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return ""
	}
	p := strings.TrimSpace(string(out))
	if p == "off" || !filepath.IsAbs(p) {
		return ""
	}
	return p
}

// GoCacheDir is the Go build cache as a Dir needing need bytes, or nothing
// when it cannot be found (then the go tool check reports why).
func GoCacheDir(need uint64) []Dir {
	p := GoCache()
	if p == "" {
		return nil
	}
	return []Dir{{Path: p, Need: need, What: "compiled packages in the Go build cache"}}
}
