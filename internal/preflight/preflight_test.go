package preflight

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fake is a machine with go, git and tini, the package runc, and plenty of disk.
func fake() System {
	sys := Host()
	sys.LookPath = func(name string) (string, error) {
		switch name {
		case "go", "git", "tini":
			return "/usr/bin/" + name, nil
		}
		return "", errors.New("executable file not found in $PATH")
	}
	sys.Installed = func(pkg string) (bool, error) { return pkg == "runc", nil }
	sys.Free = func(string) (uint64, error) { return 100 * GiB, nil }
	return sys
}

func TestCheckNamesEveryProblemTheStepAndItsRerunCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	cases := []struct {
		name string
		step Step
		sys  func(System) System
		want []string // substrings of the error; none means no error
	}{
		{
			name: "all present",
			step: Step{Tools: map[string]string{"go": "", "tini": "tini"}, Packages: []string{"runc"},
				Dirs: []Dir{{Path: filepath.Join(dir, "new", "cache"), Need: 10 * GiB}}},
		},
		{
			name: "missing tool names its package and make deps",
			step: Step{Tools: map[string]string{"unshare": "util-linux", "go": ""}},
			want: []string{"unshare is not on PATH (Debian package util-linux: run make deps)"},
		},
		{
			name: "missing go says to install Go",
			step: Step{Tools: map[string]string{"go": ""}},
			sys: func(s System) System {
				s.LookPath = func(string) (string, error) { return "", errors.New("not found") }
				return s
			},
			want: []string{"go is not on PATH (install Go and put it on PATH)"},
		},
		{
			name: "missing package",
			step: Step{Packages: []string{"containernetworking-plugins"}},
			want: []string{"Debian package containernetworking-plugins is not installed (run make deps)"},
		},
		{
			name: "dpkg cannot answer",
			step: Step{Packages: []string{"runc"}},
			sys: func(s System) System {
				s.Installed = func(string) (bool, error) { return false, errors.New("dpkg-query not found") }
				return s
			},
			want: []string{"cannot tell whether Debian package runc is installed: dpkg-query not found"},
		},
		{
			name: "cache dir cannot be created (a file is in the way, which stops root too)",
			step: Step{Dirs: []Dir{{Path: filepath.Join(file, "cache"), Need: GiB}}},
			want: []string{"cannot create " + filepath.Join(file, "cache")},
		},
		{
			name: "cache dir not writable",
			step: Step{Dirs: []Dir{{Path: dir, Need: GiB}}},
			sys: func(s System) System {
				s.Probe = func(string) error { return errors.New("read-only file system") }
				return s
			},
			want: []string{dir + " is not writable: read-only file system"},
		},
		{
			name: "too little disk says how much and for what",
			step: Step{Dirs: []Dir{{Path: dir, Need: 3 * GiB, What: "the engine's source copy and binaries"}}},
			sys: func(s System) System {
				s.Free = func(p string) (uint64, error) { return GiB / 2, nil }
				return s
			},
			want: []string{dir + " has 0.5 GiB free; test step needs about 3.0 GiB there (an estimate) for the engine's source copy and binaries"},
		},
		{
			name: "statfs fails",
			step: Step{Dirs: []Dir{{Path: dir, Need: GiB}}},
			sys: func(s System) System {
				s.Free = func(string) (uint64, error) { return 0, errors.New("statfs: boom") }
				return s
			},
			want: []string{"cannot read the free space of " + dir + ": statfs: boom"},
		},
		{
			name: "a custom check",
			step: Step{Custom: []func() error{func() error { return nil }, func() error { return errors.New("the socket path is too long") }}},
			want: []string{"  - the socket path is too long"},
		},
		{
			name: "every problem at once",
			step: Step{Tools: map[string]string{"runc": "runc", "nsenter": "util-linux"}, Packages: []string{"pigz"},
				Dirs: []Dir{{Path: dir, Need: 200 * GiB}}},
			want: []string{"runc is not on PATH", "nsenter is not on PATH", "pigz is not installed", "has 100.0 GiB free"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.step.Name = "test step"
			c.step.Rerun = "make test-step"
			sys := fake()
			if c.sys != nil {
				sys = c.sys(sys)
			}
			err := c.step.CheckOn(sys)
			if len(c.want) == 0 {
				require.NoError(t, err)
				for _, d := range c.step.Dirs {
					require.DirExists(t, d.Path, "the check creates the folders the step writes into")
				}
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "test step: cannot start on this machine")
			require.Contains(t, err.Error(), "rerun just this step: make test-step")
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestHostSeesThisMachine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	require.NoError(t, Step{Name: "host", Rerun: "true", Tools: map[string]string{"go": ""},
		Dirs: []Dir{{Path: dir, Need: 1}}}.Check())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the write probe leaves nothing behind")
	free, err := statfsFree(dir)
	require.NoError(t, err)
	require.Positive(t, free)
	ok, err := dpkgInstalled("krgeobuk-no-such-package")
	if err == nil {
		require.False(t, ok)
	}
}
