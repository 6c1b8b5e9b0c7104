package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

func TestPreflightNamesTheStepAndItsMakeTarget(t *testing.T) {
	everything := func() preflight.System {
		sys := preflight.Host()
		sys.LookPath = func(tool string) (string, error) { return "/usr/bin/" + tool, nil }
		sys.Installed = func(string) (bool, error) { return true, nil }
		sys.Free = func(string) (uint64, error) { return 100 * preflight.GiB, nil }
		return sys
	}
	state := stateDir(filepath.Join(t.TempDir(), "cache", "dagger-engine", "state"))
	cases := []struct {
		name  string
		step  preflight.Step
		spoil func(*preflight.System)
		want  []string
	}{
		{"build: all there", buildPreflight(filepath.Join(t.TempDir(), "build")), nil, nil},
		{"build: no go", buildPreflight(t.TempDir()), func(s *preflight.System) {
			s.LookPath = func(string) (string, error) { return "", errors.New("not found") }
		}, []string{"engine build: cannot start", "go is not on PATH", "rerun just this step: make engine-build"}},
		{"build: little disk", buildPreflight(t.TempDir()), func(s *preflight.System) {
			s.Free = func(string) (uint64, error) { return preflight.GiB, nil }
		}, []string{"needs about 2.0 GiB there (an estimate) for the engine's source copy and binaries", "make engine-build"}},
		{"up: all there, state folder created", upPreflight(state), nil, nil},
		{"up: no runc, no tini", upPreflight(state), func(s *preflight.System) {
			s.LookPath = func(tool string) (string, error) {
				if tool == "runc" || tool == "tini" {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + tool, nil
			}
		}, []string{"engine start: cannot start", "runc is not on PATH (Debian package runc: run make deps)", "tini is not on PATH (Debian package tini", "make engine-up"}},
		{"up: no CNI plugins", upPreflight(state), func(s *preflight.System) {
			s.Installed = func(string) (bool, error) { return false, nil }
		}, []string{"Debian package containernetworking-plugins is not installed"}},
		{"up: socket path too long", upPreflight(stateDir(filepath.Join(t.TempDir(), strings.Repeat("x", 100)))), nil,
			[]string{"engine.sock is", "the engine refuses unix socket paths over 104: set KRGEOBUK_CACHE to a shorter folder", "make engine-up"}},
		{"up: little disk", upPreflight(state), func(s *preflight.System) {
			s.Free = func(string) (uint64, error) { return preflight.GiB, nil }
		}, []string{"needs about 8.0 GiB there (an estimate) for the engine's build cache"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sys := everything()
			if c.spoil != nil {
				c.spoil(&sys)
			}
			err := c.step.CheckOn(sys)
			if c.want == nil {
				require.NoError(t, err)
				for _, d := range c.step.Dirs {
					require.DirExists(t, d.Path)
				}
				return
			}
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
