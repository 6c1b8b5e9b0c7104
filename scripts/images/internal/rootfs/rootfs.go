// Package rootfs makes Debian root filesystems with debootstrap and runs
// commands inside them with chroot, each run in its own private mount
// namespace (so /proc and /dev mounts vanish with it, whatever happens) and,
// when asked, without network.
package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
)

// Recipe is the version of how the base tarball is made; bump it when the
// debootstrap invocation changes.
const Recipe = "r1"

// Mirror is the Debian archive debootstrap and apt use.
const Mirror = "http://deb.debian.org/debian"

// need fails with a message naming `make deps` when a host tool is missing.
func need(tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed: run `make deps` (scripts/apt-packages.txt)", t)
		}
	}
	return nil
}

// BaseTarball returns the path of a cached minbase rootfs tarball of suite,
// creating it with debootstrap on first use.
func BaseTarball(ctx context.Context, cacheDir, suite string) (string, error) {
	out := filepath.Join(cacheDir, "rootfs", fmt.Sprintf("debian-%s-minbase-%s.tar", suite, Recipe))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := need("debootstrap", "tar"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".debootstrap-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	dir := filepath.Join(tmp, "rootfs")
	if err := run(ctx, nil, "debootstrap", "--variant=minbase", suite, dir, Mirror); err != nil {
		return "", fmt.Errorf("debootstrap %s: %w", suite, err)
	}
	// debootstrap's own logs and apt lists are build leftovers, not content
	for _, p := range []string{"var/lib/apt/lists", "var/cache/apt/archives", "debootstrap"} {
		_ = os.RemoveAll(filepath.Join(dir, p))
	}
	if err := os.MkdirAll(filepath.Join(dir, "var/lib/apt/lists/partial"), 0o755); err != nil {
		return "", err
	}
	part := filepath.Join(tmp, "base.tar")
	if err := run(ctx, nil, "tar", "--numeric-owner", "-cpf", part, "-C", dir, "."); err != nil {
		return "", fmt.Errorf("archive rootfs: %w", err)
	}
	if err := os.Rename(part, out); err != nil {
		return "", err
	}
	return out, nil
}

// FirstStage is debootstrap's first stage of a minbase rootfs of suite for
// the foreign arch (with the include packages and their dependencies) in dir:
// it resolves, fetches and unpacks natively, so apt never runs emulated;
// SecondStage configures the packages.
func FirstStage(ctx context.Context, dir, suite, arch string, include []string) error {
	if "linux/"+arch != emulation.Platform {
		return fmt.Errorf("rootfs: architecture %q: only %s is emulated", arch, emulation.Platform)
	}
	if err := need("debootstrap"); err != nil {
		return err
	}
	args := []string{"--foreign", "--arch=" + arch, "--variant=minbase"}
	if len(include) > 0 {
		args = append(args, "--include="+strings.Join(include, ","))
	}
	args = append(args, suite, dir, Mirror)
	if err := run(ctx, nil, "debootstrap", args...); err != nil {
		return fmt.Errorf("debootstrap --foreign --arch=%s %s: %w", arch, suite, err)
	}
	return nil
}

// SecondStage runs debootstrap's second stage in dir under emu, offline (the
// first stage fetched every package). container=lxc keeps debootstrap from
// test-creating a device node, which a user namespace may not do; the
// first stage, as real root, made the ones the rootfs needs.
func SecondStage(ctx context.Context, dir string, emu *emulation.Emulator) error {
	if emu == nil {
		return errors.New("rootfs: the second stage of a foreign rootfs needs an emulator")
	}
	env := []string{"container=lxc", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	if err := Run(ctx, dir, Opts{Offline: true, Env: env, Emulator: emu}, "/debootstrap/debootstrap", "--second-stage"); err != nil {
		return fmt.Errorf("debootstrap --second-stage: %w", err)
	}
	for _, p := range []string{"var/lib/apt/lists", "var/cache/apt/archives", "debootstrap"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "var/lib/apt/lists/partial"), 0o755); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(dir, "var/cache/apt/archives/partial"), 0o755)
}

// Extract unpacks a rootfs tarball into dir (created).
func Extract(ctx context.Context, tarball, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := run(ctx, nil, "tar", "--numeric-owner", "-xpf", tarball, "-C", dir); err != nil {
		return fmt.Errorf("extract %s: %w", tarball, err)
	}
	return nil
}

// Opts say how a command runs in a rootfs.
type Opts struct {
	// Offline runs it in a fresh network namespace with only loopback up.
	Offline bool
	// JoinNet, when non-zero, runs it in the network namespace of that
	// process (a server started Offline), e.g. for a client or health check.
	JoinNet int
	// Env is the whole environment of the command (nothing is inherited).
	Env []string
	// Dir is the working directory inside the rootfs.
	Dir string
	// Stdout and Stderr default to a buffer quoted in the error.
	Stdout, Stderr io.Writer
	// Emulator, when set, runs the whole command in a user namespace of its
	// own whose binfmt_misc runs arm64 programs with it (see
	// internal/emulation): for a foreign-architecture rootfs. The host never
	// gets a registration.
	Emulator *emulation.Emulator
}

// Command prepares args to run chrooted in dir with opt; the caller starts it.
// /proc (Go, npm and MariaDB read /proc/self) and /dev are mounted inside a
// private mount namespace, so they are gone when the command ends, even if
// it is killed: nothing is ever left mounted on the host.
func Command(ctx context.Context, dir string, opt Opts, args ...string) (*exec.Cmd, error) {
	if err := need("unshare", "chroot", "mount"); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("rootfs: no command")
	}
	// a pid namespace too: when the command ends or is killed, every
	// process it started goes with it
	ns := []string{"--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"}
	if opt.Offline {
		ns = append(ns, "--net")
	}
	name := "unshare"
	if opt.JoinNet != 0 {
		if opt.Offline {
			return nil, errors.New("rootfs: Offline and JoinNet exclude each other")
		}
		ns = append([]string{"--net=/proc/" + strconv.Itoa(opt.JoinNet) + "/ns/net", "--", "unshare"}, ns...)
		name = "nsenter"
	}
	wd := opt.Dir
	if wd == "" {
		wd = "/"
	}
	// The command's environment is the process environment (never words on a
	// command line, so secrets stay off /proc/*/cmdline); the two helper
	// variables are dropped before the chroot.
	script := `set -e
r=$KRGEOBUK_ROOTFS; o=${KRGEOBUK_OFFLINE:-}; unset KRGEOBUK_ROOTFS KRGEOBUK_OFFLINE
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
if [ -n "$o" ]; then ip link set lo up; fi
exec chroot "$r" /bin/sh -c 'cd "$0" && exec "$@"' "$@"`
	full := append(ns, "--", "/bin/sh", "-c", script, "sh", wd)
	full = append(full, args...)
	env := append([]string{}, opt.Env...)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env = append(env, "KRGEOBUK_ROOTFS="+dir)
	if opt.Offline {
		env = append(env, "KRGEOBUK_OFFLINE=1")
	}
	var cmd *exec.Cmd
	if opt.Emulator != nil {
		// a network namespace of the host's user namespace is out of reach
		// from the emulator's
		if opt.JoinNet != 0 {
			return nil, errors.New("rootfs: JoinNet cannot be used with an Emulator")
		}
		var err error
		if cmd, err = opt.Emulator.Command(ctx, env, append([]string{name}, full...)...); err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Setpgid = true
	} else {
		cmd = exec.CommandContext(ctx, name, full...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Env = env
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdout, cmd.Stderr = opt.Stdout, opt.Stderr
	return cmd, nil
}

// Run runs args in dir (see Command) and waits for it.
func Run(ctx context.Context, dir string, opt Opts, args ...string) error {
	var buf bytes.Buffer
	if opt.Stdout == nil {
		opt.Stdout = &buf
	}
	if opt.Stderr == nil {
		opt.Stderr = &buf
	}
	cmd, err := Command(ctx, dir, opt, args...)
	if err != nil {
		return err
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chroot %s: %s: %w\n%s", dir, strings.Join(args, " "), err, tail(buf.String()))
	}
	return nil
}

// AptInstall installs packages in dir from the Debian archive (with
// network), with daemons prevented from starting, then drops apt's lists,
// caches and logs.
func AptInstall(ctx context.Context, dir string, packages ...string) error {
	policy := filepath.Join(dir, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	defer func() { _ = os.Remove(policy) }()
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/resolv.conf"), resolv, 0o644); err != nil {
		return err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "HOME=/root", "LANG=C.UTF-8"}
	if err := Run(ctx, dir, Opts{Env: env}, "apt-get", "update"); err != nil {
		return err
	}
	args := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, packages...)
	if err := Run(ctx, dir, Opts{Env: env}, args...); err != nil {
		return err
	}
	if err := Run(ctx, dir, Opts{Env: env}, "apt-get", "clean"); err != nil {
		return err
	}
	return Tidy(dir)
}

// Tidy removes what a build leaves that is not content: apt lists, logs,
// the host's resolv.conf, caches that differ per run.
func Tidy(dir string) error {
	for _, g := range []string{"var/lib/apt/lists/*", "var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old", "var/cache/ldconfig/aux-cache", "tmp/*", "var/tmp/*"} {
		matches, _ := filepath.Glob(filepath.Join(dir, g))
		for _, m := range matches {
			if filepath.Base(m) == "partial" {
				continue
			}
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc/resolv.conf"), nil, 0o644)
}

func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail(buf.String()))
	}
	return nil
}

func tail(s string) string {
	const n = 4000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
