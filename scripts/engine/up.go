package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// state is what `up` records in run/up.json for `exec` and `down`.
type state struct {
	UnsharePID int       `json:"unsharePid"`
	NsPID      int       `json:"nsPid"` // tini, pid 1 of the engine's pid namespace, as the host sees it
	PidNS      string    `json:"pidNs"`
	NetNS      string    `json:"netNs"`
	Socket     string    `json:"socket"`
	Bin        string    `json:"bin"` // the build's binaries, the dagger CLI among them
	Started    time.Time `json:"started"`
	HostMounts []string  `json:"hostMounts"`
	HostLinks  []string  `json:"hostLinks"`
	Absent     []string  `json:"absent"` // host paths the engine would write if it escaped its namespaces
}

// layout of the state folder: root and registry persist, run is laid anew by every `up`.
type stateDir string

// root is the engine's build cache. Since the engine runs in its own user namespace its
// snapshots carry user.* overlay xattrs; the folder an engine outside one wrote (trusted.*
// xattrs, unreadable from a user namespace) was called "root" and is removed by `up`.
func (s stateDir) root() string     { return filepath.Join(string(s), "userns-root") }
func (s stateDir) oldRoot() string  { return filepath.Join(string(s), "root") }
func (s stateDir) registry() string { return filepath.Join(string(s), "registry") }
func (s stateDir) run() string      { return filepath.Join(string(s), "run") }
func (s stateDir) file() string     { return filepath.Join(s.run(), "up.json") }
func (s stateDir) socket() string   { return filepath.Join(s.run(), "engine.sock") }
func (s stateDir) log() string      { return filepath.Join(s.run(), "engine.log") }

// RunnerHostFile holds the engine's address (unix://…) while it is up.
// secureRegistry holds the authenticating registry's config, certificates, htpasswd and blobs;
// laid anew by every `up` (under run) with a fresh CA and password.
func (s stateDir) secureRegistry() string { return filepath.Join(s.run(), "secure-registry") }

// secureRegistryFile tells the e2e suite how to reach that registry (registrytest.Login).
func (s stateDir) secureRegistryFile() string { return filepath.Join(s.run(), "secure-registry.json") }

func (s stateDir) runnerHostFile() string { return filepath.Join(s.run(), "runner-host") }

// escapePaths are what the engine writes on the host when not confined by its mount namespace.
var escapePaths = []string{
	"/etc/dagger", "/etc/dnsmasq-resolv.conf", "/usr/local/bin/runc", "/usr/local/bin/dagger-init",
	"/var/lib/cni", "/run/containers/cni", "/run/buildkit", "/run/dagger", "/usr/local/share/dagger",
}

func loadState(s stateDir) (*state, error) {
	b, err := os.ReadFile(s.file())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", s.file(), err)
	}
	return &st, nil
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func up(ctx context.Context, p paths, s stateDir, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	sdkLayout := fs.String("go-sdk-layout", "", "OCI image layout of the builtin Go SDK image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sdkDigest string
	if *sdkLayout != "" {
		d, err := layoutManifestDigest(*sdkLayout)
		if err != nil {
			return fmt.Errorf("--go-sdk-layout: %w", err)
		}
		sdkDigest = d
	}
	if st, err := loadState(s); err != nil {
		return err
	} else if st != nil && alive(st.NsPID) {
		fmt.Printf("engine: already up (pid %d), unix://%s\n", st.NsPID, st.Socket)
		return nil
	}
	bdir, err := buildDir(p.cache, p.distconsts, p.standins)
	if err != nil {
		return err
	}
	bin := filepath.Join(bdir, "bin")
	if _, err := os.Stat(filepath.Join(bin, ".complete")); err != nil {
		return fmt.Errorf("engine not built (run make engine-build): %w", err)
	}
	if err := upPreflight(s).CheckOn(hostWithSbin()); err != nil {
		return err
	}
	for _, old := range []string{s.run(), s.oldRoot()} {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	emu, err := emulation.Fetch(ctx, p.cache, func(f string, a ...any) { fmt.Printf("engine: "+f+"\n", a...) })
	if err != nil {
		return fmt.Errorf("the arm64 emulator: %w", err)
	}
	for _, d := range []string{s.root(), s.registry(), s.run()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// `go run` deletes its binary on exit; the namespace keeps running this copy.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tool := filepath.Join(s.run(), "krgeobuk-engine")
	if err := copyFile(self, tool, 0o755); err != nil {
		return err
	}
	st := &state{Socket: s.socket(), Bin: bin, Started: time.Now()}
	if st.HostMounts, err = mountPoints("/proc/self/mountinfo"); err != nil {
		return err
	}
	if st.HostLinks, err = netLinks(); err != nil {
		return err
	}
	for _, pth := range escapePaths {
		if _, err := os.Lstat(pth); errors.Is(err, os.ErrNotExist) {
			st.Absent = append(st.Absent, pth)
		}
	}
	logf, err := os.Create(s.log())
	if err != nil {
		return err
	}
	defer logf.Close()
	regBin, err := registrytest.Server.Ensure(ctx, func(f string, a ...any) { fmt.Printf("engine: "+f+"\n", a...) })
	if err != nil {
		return fmt.Errorf("the authenticating registry: %w", err)
	}
	if err := writeSecureRegistry(s); err != nil {
		return err
	}
	insideArgs := []string{"--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private",
		"--kill-child", "--", "tini", "-s", "--", tool, "inside", "--state", string(s), "--bin", bin,
		"--secure-registry-bin", regBin, "--qemu", emu.Path}
	if *sdkLayout != "" {
		abs, err := filepath.Abs(*sdkLayout)
		if err != nil {
			return err
		}
		insideArgs = append(insideArgs, "--go-sdk-layout", abs, "--go-sdk-digest", sdkDigest)
	}
	cmd := exec.Command("unshare", insideArgs...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The engine's own user namespace: the binfmt_misc instance `inside` registers the arm64
	// emulator in belongs to it, so no process outside the engine runs foreign binaries and the
	// registration ends with the engine, however it ends.
	cmd.SysProcAttr = emulation.UserNamespace()
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start engine namespace: %w", err)
	}
	st.UnsharePID = cmd.Process.Pid
	_ = cmd.Process.Release()

	// Bounded wait: tini appears, then the engine's socket accepts and the registry is ready.
	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = retry.Do(readyCtx, retry.WithMaxDuration(2*time.Minute, retry.NewConstant(200*time.Millisecond)), func(ctx context.Context) error {
		if !alive(st.UnsharePID) {
			return fmt.Errorf("engine namespace exited")
		}
		if st.NsPID == 0 {
			st.NsPID = serverproc.FirstChild(st.UnsharePID)
			if st.NsPID == 0 {
				return retry.RetryableError(errors.New("namespace not started"))
			}
		}
		if _, err := os.Stat(filepath.Join(s.run(), "registry-ready")); err != nil {
			return retry.RetryableError(fmt.Errorf("registry not ready: %w", err))
		}
		c, err := net.DialTimeout("unix", s.socket(), time.Second)
		if err != nil {
			return retry.RetryableError(fmt.Errorf("engine socket: %w", err))
		}
		return c.Close()
	})
	if st.NsPID != 0 {
		st.PidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", st.NsPID))
		st.NetNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", st.NsPID))
	}
	b, jerr := json.MarshalIndent(st, "", "  ")
	if jerr != nil {
		return jerr
	}
	if werr := os.WriteFile(s.file(), b, 0o600); werr != nil {
		return werr
	}
	if err != nil {
		logTail := tail(s.log(), 30)
		_ = down(ctx, s)
		return fmt.Errorf("engine did not become ready: %w\n--- %s (last lines)\n%s", err, s.log(), logTail)
	}
	if err := os.WriteFile(s.runnerHostFile(), []byte("unix://"+s.socket()+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("engine: up in %.1fs (pid %d), KRGEOBUK_ENGINE_HOST=unix://%s\n", time.Since(st.Started).Seconds(), st.NsPID, s.socket())
	fmt.Printf("engine: runs %s under Debian's qemu-aarch64-static %s, registered in its own user namespace only\n", emulation.Platform, emu.Version)
	fmt.Printf("engine: registry 127.0.0.1:%d and %s:%d inside its network; log %s\n", RegistryPort, GatewayAddr, RegistryPort, s.log())
	fmt.Printf("engine: authenticating registry %s:%d (TLS, htpasswd), its account and CA in %s\n", GatewayAddr, SecureRegistryPort, s.secureRegistryFile())
	return nil
}

// writeSecureRegistry lays out the authenticating registry (config, certificates for both its
// addresses from a fresh CA, htpasswd with a random password) and the file that tells the e2e
// suite how to log in.
func writeSecureRegistry(s stateDir) error {
	setup, err := registrytest.Write(s.secureRegistry(), registrytest.Settings{
		Addr: "0.0.0.0:" + strconv.Itoa(SecureRegistryPort), Names: []string{GatewayAddr}, CertValidity: 7 * 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("the authenticating registry: %w", err)
	}
	pw := filepath.Join(s.secureRegistry(), "password")
	if err := os.WriteFile(pw, []byte(setup.Password), 0o600); err != nil {
		return err
	}
	return registrytest.WriteLogin(s.secureRegistryFile(), registrytest.Login{Host: GatewayAddr + ":" + strconv.Itoa(SecureRegistryPort),
		Username: setup.Username, PasswordFile: pw, CAFile: setup.CAFile})
}

// upPreflight is what starting the engine needs: the programs it and its
// namespaces run (Debian package in the value), the CNI plugins, and a
// writable state folder with room for the engine's build cache and the
// registry's blobs (an estimate: a full make e2e run fills a few GiB).
func upPreflight(s stateDir) preflight.Step {
	return preflight.Step{
		Name:  "engine start",
		Rerun: "make engine-up (make e2e runs it)",
		Tools: map[string]string{
			"unshare": "util-linux", "nsenter": "util-linux", "tini": "tini", "runc": "runc", "ip": "iproute2",
			"iptables": "iptables", "dnsmasq": "dnsmasq-base", "pigz": "pigz", "git": "git",
		},
		Packages: []string{"containernetworking-plugins"},
		Dirs:     []preflight.Dir{{Path: string(s), Need: 8 * preflight.GiB, What: "the engine's build cache and the registry's blobs"}},
		Custom: []func() error{func() error {
			if n := len(s.socket()); n > maxSocketPath {
				return fmt.Errorf("the engine's socket %s is %d bytes long; the engine refuses unix socket paths over %d: set KRGEOBUK_CACHE to a shorter folder", s.socket(), n, maxSocketPath)
			}
			return nil
		}},
	}
}

// maxSocketPath is the longest unix socket path the engine accepts (it says
// "unix socket path too long (> 104)" and exits).
const maxSocketPath = 104

// hostWithSbin finds programs on PATH or in /usr/sbin, where Debian keeps
// iptables and dnsmasq (not on a non-root user's PATH).
func hostWithSbin() preflight.System {
	sys := preflight.Host()
	sys.LookPath = func(tool string) (string, error) {
		p, err := exec.LookPath(tool)
		if err == nil {
			return p, nil
		}
		if fi, serr := os.Stat("/usr/sbin/" + tool); serr == nil && fi.Mode()&0o111 != 0 {
			return "/usr/sbin/" + tool, nil
		}
		return "", err
	}
	return sys
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mountPoints lists the mount points in a mountinfo file.
func mountPoints(mountinfo string) ([]string, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out, nil
}

func netLinks() ([]string, error) {
	es, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, nil
}

// layoutManifestDigest reads the single image manifest an OCI layout's index.json names.
func layoutManifestDigest(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", err
	}
	var idx struct {
		Manifests []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return "", fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(idx.Manifests) != 1 {
		return "", fmt.Errorf("%s/index.json: want exactly one manifest, found %d", dir, len(idx.Manifests))
	}
	d := idx.Manifests[0].Digest
	if !strings.HasPrefix(d, "sha256:") {
		return "", fmt.Errorf("%s/index.json: manifest digest %q is not sha256", dir, d)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))); err != nil {
		return "", fmt.Errorf("%s: manifest blob: %w", dir, err)
	}
	return d, nil
}
