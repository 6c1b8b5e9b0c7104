package image

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

func TestImagePreflightsNameTheStepAndHowToRerunIt(t *testing.T) {
	machine := func(missing string, free uint64) preflight.System {
		sys := preflight.Host()
		sys.LookPath = func(tool string) (string, error) {
			if tool == missing {
				return "", errors.New("not found")
			}
			return "/usr/bin/" + tool, nil
		}
		sys.Free = func(string) (uint64, error) { return free, nil }
		return sys
	}
	golang := Base{Name: "golang"}
	for _, b := range BaseImages() {
		if b.Name == "golang" {
			golang = b
		}
	}
	cases := []struct {
		name    string
		step    preflight.Step
		missing string
		free    uint64
		want    []string
	}{
		{"go-sdk ready", (&GoSDK{}).Preflight(filepath.Join(t.TempDir(), "go-sdk")), "", 100 * preflight.GiB, nil},
		{"go-sdk without debootstrap", (&GoSDK{}).Preflight(t.TempDir()), "debootstrap", 100 * preflight.GiB,
			[]string{"images go-sdk: cannot start", "debootstrap is not on PATH (Debian package debootstrap: run make deps)", "rerun just this step: make images"}},
		{"go-sdk without disk", (&GoSDK{}).Preflight(t.TempDir()), "", preflight.GiB,
			[]string{"needs about 10.0 GiB there (an estimate) for the Go SDK image's work tree"}},
		{"go-sdk without git", (&GoSDK{}).Preflight(t.TempDir()), "git", 100 * preflight.GiB, []string{"git is not on PATH"}},
		{"base without unshare", BasePreflight(Base{Name: "redis"}, t.TempDir()), "unshare", 100 * preflight.GiB,
			[]string{"images base (redis): cannot start", "unshare is not on PATH (Debian package util-linux", "go -C scripts/images run . base"}},
		{"base redis needs no go", BasePreflight(Base{Name: "redis"}, t.TempDir()), "go", 100 * preflight.GiB, nil},
		{"base golang needs go", BasePreflight(golang, t.TempDir()), "go", 100 * preflight.GiB, []string{"go is not on PATH"}},
		{"base arm64 fetches the emulator with apt", BasePreflight(Base{Name: "nginx", Arch: "arm64"}, t.TempDir()), "dpkg-deb", 100 * preflight.GiB,
			[]string{"images base (nginx, arm64): cannot start", "dpkg-deb is not on PATH (Debian package dpkg"}},
		{"base amd64 needs no dpkg-deb", BasePreflight(Base{Name: "nginx"}, t.TempDir()), "dpkg-deb", 100 * preflight.GiB, nil},
		{"proof without chroot", ProvePreflight(t.TempDir()), "chroot", 100 * preflight.GiB,
			[]string{"Go SDK image proof: cannot start", "chroot is not on PATH", "go -C scripts/images run . prove-go-sdk"}},
		{"proof creates its scratch root", ProvePreflight(filepath.Join(t.TempDir(), "cache", "tmp")), "", 100 * preflight.GiB, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.step.CheckOn(machine(c.missing, c.free))
			if c.want == nil {
				require.NoError(t, err)
				require.DirExists(t, c.step.Dirs[0].Path)
				return
			}
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
