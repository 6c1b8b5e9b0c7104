package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
)

func cacheDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KRGEOBUK_CACHE"); d != "" {
		return filepath.Join(d, "dagger-images")
	}
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	return filepath.Join(home, ".cache", "krgeobuk", "dagger-images")
}

func TestRunIsolatesAndLeavesNothingMounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	base, err := BaseTarball(ctx, cacheDir(t), "bookworm")
	require.NoError(t, err, "debootstrap of the base rootfs (run `make deps` if it is missing)")
	root := filepath.Join(t.TempDir(), "rootfs")
	require.NoError(t, Extract(ctx, base, root))

	cases := []struct {
		name     string
		opt      Opts
		wantOnly bool // only loopback visible
	}{
		{"offline", Opts{Offline: true}, true},
		{"with network", Opts{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			c.opt.Stdout, c.opt.Stderr = &out, &out
			c.opt.Env = []string{"KRGEOBUK_TEST_SECRET=do-not-show"}
			require.NoError(t, Run(ctx, root, c.opt, "sh", "-c", `cat /proc/net/dev; echo "secret=${KRGEOBUK_TEST_SECRET}"; tr '\0' ' ' </proc/self/cmdline`))
			ifaces := 0
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.Contains(line, ":") && !strings.Contains(line, "|") && !strings.HasPrefix(line, "secret=") {
					ifaces++
				}
			}
			if c.wantOnly {
				require.Equal(t, 1, ifaces, "offline run must see only loopback:\n%s", out.String())
				require.Contains(t, out.String(), "lo:")
			} else {
				require.Greater(t, ifaces, 1, "a run with network sees the host's interfaces:\n%s", out.String())
			}
			require.Contains(t, out.String(), "secret=do-not-show", "the environment reaches the command")
			require.NotContains(t, strings.SplitN(out.String(), "secret=", 2)[1][len("do-not-show"):], "do-not-show", "the environment is not on the command line")
		})
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), root, "a chroot run left a mount behind")
}

func TestCommandRejectsContradictoryOptions(t *testing.T) {
	_, err := Command(context.Background(), t.TempDir(), Opts{Offline: true, JoinNet: 1}, "true")
	require.ErrorContains(t, err, "Offline and JoinNet exclude each other")
	_, err = Command(context.Background(), t.TempDir(), Opts{})
	require.ErrorContains(t, err, "no command")
	_, err = Command(context.Background(), t.TempDir(), Opts{JoinNet: 1, Emulator: &emulation.Emulator{Path: "/qemu"}}, "true")
	require.ErrorContains(t, err, "JoinNet cannot be used with an Emulator")
}

// A foreign rootfs of an architecture nothing emulates, or a second stage
// with no emulator, is refused before debootstrap touches the folder.
func TestForeignStagesRefuseWhatCannotRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rootfs")
	err := FirstStage(context.Background(), dir, "bookworm", "riscv64", nil)
	require.ErrorContains(t, err, `architecture "riscv64": only linux/arm64 is emulated`)
	require.NoDirExists(t, dir)
	err = SecondStage(context.Background(), dir, nil)
	require.ErrorContains(t, err, "needs an emulator")
}
