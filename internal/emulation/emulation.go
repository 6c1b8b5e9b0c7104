// Package emulation runs linux/arm64 programs on an amd64 host under Debian's
// qemu-user-static, registered with binfmt_misc inside a user namespace of
// their own: the registration lives and dies with that namespace, so the host
// (and any other engine or build on it) never runs a foreign binary, and a
// crash leaves nothing to clean up.
//
// Why a user namespace: a binfmt_misc entry made by root in the initial user
// namespace is global, even from a private mount namespace; since Linux 6.7 a
// user namespace that mounts binfmt_misc gets an instance of its own.
package emulation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Package is the Debian package the emulator comes from; only its
// qemu-aarch64-static is kept.
const Package = "qemu-user-static"

// Platform is the foreign platform this package emulates.
const Platform = "linux/arm64"

const binaryInDeb = "./usr/bin/qemu-aarch64-static"

// entryName is the binfmt_misc entry's name: ours, so it never collides with
// a host's own qemu-aarch64 entry.
const entryName = "krgeobuk-qemu-aarch64"

// The ELF header of an aarch64 executable and its mask, as Debian's
// /usr/lib/binfmt.d/qemu-aarch64.conf has them (binfmt_misc decodes the \x
// escapes itself).
const (
	aarch64Magic = `\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00`
	aarch64Mask  = `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`
)

// Emulator is a cached qemu-aarch64-static.
type Emulator struct {
	// Path is the static binary; Version is the Debian package version it came from.
	Path, Version string
}

// Registration is the binfmt_misc register line for e. The flags: F opens the
// binary now, so it need not exist inside containers or chroots; P keeps
// argv[0] (busybox-style applets need it); O hands qemu an open file.
func (e Emulator) Registration() string {
	return fmt.Sprintf(":%s:M::%s:%s:%s:OPF", entryName, aarch64Magic, aarch64Mask, e.Path)
}

// Fetch returns the emulator cached under <cache>/qemu/<version>/, taking the
// version apt offers as candidate and, on first use, downloading that .deb
// with `apt-get download` (verified against the archive's signed index) and
// keeping only qemu-aarch64-static. Nothing is installed: the package's own
// maintainer scripts would register binfmt entries for the whole host.
// logf, if not nil, reports a download.
func Fetch(ctx context.Context, cache string, logf func(string, ...any)) (Emulator, error) {
	version, err := candidate(ctx)
	if err != nil {
		return Emulator{}, err
	}
	dir := filepath.Join(cache, "qemu", strings.NewReplacer(":", "_", "+", "_").Replace(version))
	e := Emulator{Path: filepath.Join(dir, "qemu-aarch64-static"), Version: version}
	if fi, err := os.Stat(e.Path); err == nil && fi.Mode()&0o111 != 0 {
		return e, nil
	}
	if logf != nil {
		logf("emulation: fetching Debian's %s %s (only qemu-aarch64-static is kept)", Package, version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Emulator{}, err
	}
	tmp, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return Emulator{}, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if _, err := output(ctx, tmp, "apt-get", "download", Package+"="+version); err != nil {
		return Emulator{}, fmt.Errorf("%s %s: %w", Package, version, err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return Emulator{}, fmt.Errorf("%s %s: apt-get download left %d .deb files", Package, version, len(debs))
	}
	script := `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "$3"`
	if _, err := output(ctx, tmp, "sh", "-c", script, "sh", debs[0], tmp, binaryInDeb); err != nil {
		return Emulator{}, fmt.Errorf("%s %s: extract %s: %w", Package, version, binaryInDeb, err)
	}
	if err := os.Rename(filepath.Join(tmp, binaryInDeb), e.Path); err != nil {
		return Emulator{}, err
	}
	return e, nil
}

// candidate is the version of Package apt would install. The archive drops
// superseded point releases, so the version is read, not pinned; it keys the
// cache and is printed with every fetch.
//
// A machine whose package lists were never fetched or were cleaned (as
// container images do) has no candidate: as root, the lists are fetched once
// (what `make deps` does when it installs something) and apt is asked again.
func candidate(ctx context.Context) (string, error) {
	v, err := policyCandidate(ctx)
	if err == nil || os.Geteuid() != 0 {
		return v, err
	}
	if _, uerr := output(ctx, "", "apt-get", "update", "-qq"); uerr != nil {
		return "", fmt.Errorf("%w; apt-get update: %v", err, uerr)
	}
	return policyCandidate(ctx)
}

func policyCandidate(ctx context.Context) (string, error) {
	out, err := output(ctx, "", "apt-cache", "policy", Package)
	if err == nil {
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok {
				if v = strings.TrimSpace(v); v != "" && v != "(none)" {
					return v, nil
				}
			}
		}
	}
	return "", fmt.Errorf("apt knows no candidate for %s (run apt-get update; Debian's archive must be reachable): %v", Package, err)
}

func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", name, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// idMap maps every id but the last one onto itself. A map of the whole range
// would make the namespace look like the initial one to containerd and runc,
// which then drop the overlay option a user namespace needs (userxattr) and
// every container mount fails with EPERM.
var idMap = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 2}}

// UserNamespace is the SysProcAttr of a process that starts in a new user and
// mount namespace where every id but the last keeps its meaning; root in it
// is root for files, and may mount its own binfmt_misc.
func UserNamespace() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                idMap,
		GidMappings:                idMap,
		GidMappingsEnableSetgroups: true,
	}
}

// registerScript mounts the namespace's own binfmt_misc, registers the entry
// from the environment and execs the command; the variable does not reach it.
const registerScript = `set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf '%s' "$KRGEOBUK_BINFMT" > /proc/sys/fs/binfmt_misc/register
unset KRGEOBUK_BINFMT
exec "$@"`

// Command runs args in a new user namespace (UserNamespace) whose own
// binfmt_misc runs aarch64 executables with e, so args and everything they
// start may be arm64 programs. env is the command's environment (this
// process's when nil); the caller sets output and starts it.
func (e Emulator) Command(ctx context.Context, env []string, args ...string) (*exec.Cmd, error) {
	if len(args) == 0 {
		return nil, errors.New("emulation: no command")
	}
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", registerScript, "sh"}, args...)...)
	cmd.SysProcAttr = UserNamespace()
	cmd.Env = append(append([]string{}, env...), "KRGEOBUK_BINFMT="+e.Registration())
	return cmd, nil
}

// Register registers e in the binfmt_misc instance mounted at dir (for a
// process that already is in its own user namespace and mounted it, as the
// Dagger engine's namespace does before the engine starts).
func (e Emulator) Register(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "register"), []byte(e.Registration()), 0); err != nil {
		return fmt.Errorf("register %s in %s: %w", entryName, dir, err)
	}
	return nil
}

// MountAndRegister mounts a binfmt_misc instance at /proc/sys/fs/binfmt_misc
// (the caller's user namespace's own) and registers e in it.
func (e Emulator) MountAndRegister() error {
	const dir = "/proc/sys/fs/binfmt_misc"
	if err := syscall.Mount("binfmt_misc", dir, "binfmt_misc", 0, ""); err != nil {
		return fmt.Errorf("mount binfmt_misc on %s (needs its own user namespace): %w", dir, err)
	}
	return e.Register(dir)
}
