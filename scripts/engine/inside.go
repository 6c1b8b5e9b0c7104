package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// overlayDirs are the host folders the engine writes to; inside its mount namespace each gets a
// writable overlay whose upper layer lives on a namespace-private tmpfs, so nothing reaches the host.
var overlayDirs = []string{"/usr/bin", "/usr/local/bin", "/etc", "/var", "/usr/local/share"}

// hostCAs is where the engine looks for extra CA certificates to put in containers (under the
// /usr/local/share overlay, so hiding it changes nothing on the host).
const hostCAs = "/usr/local/share/ca-certificates"

// inside runs as the child of tini, pid 1 of the engine's pid namespace, in fresh mount and
// network namespaces: it lays out the file system the engine expects, serves the registry and
// runs the engine until SIGTERM.
func inside(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inside", flag.ContinueOnError)
	stateFlag := fs.String("state", "", "state folder")
	bin := fs.String("bin", "", "engine binaries")
	sdkLayout := fs.String("go-sdk-layout", "", "OCI layout of the Go SDK image")
	sdkDigest := fs.String("go-sdk-digest", "", "its manifest digest")
	regBin := fs.String("secure-registry-bin", "", "the distribution registry program")
	qemu := fs.String("qemu", "", "qemu-aarch64-static, registered for arm64 executables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := stateDir(*stateFlag)
	scratch := filepath.Join(s.run(), "ns")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("tmpfs %s: %w", scratch, err)
	}
	for i, d := range overlayDirs {
		upper, work := filepath.Join(scratch, strconv.Itoa(i), "upper"), filepath.Join(scratch, strconv.Itoa(i), "work")
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, upper, work)
		if err := syscall.Mount("overlay", d, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s: %w", d, err)
		}
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs /run: %w", err)
	}
	// The engine copies the CAs in this folder into every container and runs
	// update-ca-certificates around every exec: seconds each natively, up to a minute under
	// emulation. It has no network beyond its own registries, whose CA engine.json names.
	if err := os.MkdirAll(hostCAs, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", hostCAs, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs %s: %w", hostCAs, err)
	}
	// Registered before the engine starts: it asks once, at start, which platforms it can
	// run, and routes every arm64 exec through this kernel registration from then on.
	if *qemu != "" {
		if err := (emulation.Emulator{Path: *qemu}).MountAndRegister(); err != nil {
			return err
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	for dst, src := range map[string]string{
		"/usr/local/bin/runc":          runc,
		"/usr/local/bin/dagger-init":   filepath.Join(*bin, "dagger-init"),
		"/usr/local/bin/dagger-engine": filepath.Join(*bin, "dagger-engine"),
		"/usr/local/bin/dialstdio":     filepath.Join(*bin, "dialstdio"),
	} {
		if err := copyFile(src, dst, 0o755); err != nil {
			return err
		}
	}
	// The engine points /usr/bin/iptables* at /usr/bin/xtables-*-multi; Debian keeps those in /usr/sbin.
	for _, x := range []string{"xtables-legacy-multi", "xtables-nft-multi"} {
		if err := os.Symlink("/usr/sbin/"+x, "/usr/bin/"+x); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	cniDir := filepath.Join(scratch, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	plugins, err := os.ReadDir("/usr/lib/cni")
	if err != nil {
		return fmt.Errorf("CNI plugins (containernetworking-plugins; run make deps): %w", err)
	}
	for _, pl := range plugins {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", pl.Name()), filepath.Join(cniDir, pl.Name())); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(*bin, "dnsname"), filepath.Join(cniDir, "dnsname"), 0o755); err != nil {
		return err
	}
	cfg, err := engineConfig(filepath.Join(s.secureRegistry(), "ca.pem"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll("/etc/dagger", 0o755); err != nil {
		return err
	}
	if err := os.WriteFile("/etc/dagger/engine.json", cfg, 0o644); err != nil {
		return err
	}
	toml := filepath.Join(scratch, "buildkitd.toml")
	if err := os.WriteFile(toml, buildkitConfig(s.root()), 0o644); err != nil {
		return err
	}
	if *sdkLayout != "" {
		// The engine reads builtin images from a containerd content store at this folder; its
		// blobs/sha256 layout is the OCI layout's, so the layout's blobs are bound in read-only
		// and the store's own ingest folder stays on the overlay.
		content := "/usr/local/share/dagger/content/blobs"
		if err := os.MkdirAll(content, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(filepath.Join(*sdkLayout, "blobs"), content, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind Go SDK layout: %w", err)
		}
		if err := syscall.Mount("", content, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only Go SDK layout: %w", err)
		}
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %w: %s", err, out)
	}

	ln, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(RegistryPort))
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	reg := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(s.registry())),
		registry.Logger(log.New(os.Stderr, "registry: ", log.LstdFlags)))
	srv := &http.Server{Handler: reg}
	go func() { _ = srv.Serve(ln) }()
	secure, err := startSecureRegistry(s, *regBin)
	if err != nil {
		return err
	}
	defer func() { _ = secure.Stop() }()
	if err := os.WriteFile(filepath.Join(s.run(), "registry-ready"), nil, 0o644); err != nil {
		return err
	}

	cmd := exec.Command("/usr/local/bin/dagger-engine", "--config", toml, "--root", s.root(),
		"--addr", "unix://"+s.socket(), "--oci-cni-binary-dir", cniDir)
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if *sdkDigest != "" {
		cmd.Env = append(cmd.Env, "DAGGER_GO_SDK_MANIFEST_DIGEST="+*sdkDigest)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dagger-engine: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "inside: %v, stopping the engine\n", s)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	case err = <-done:
	}
	_ = srv.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dagger-engine: %w", err)
	}
	return nil
}

// startSecureRegistry runs the authenticating registry `up` laid out, its output in the engine's
// run folder, and returns once its TLS port accepts connections (bounded: a healthy one does in well
// under a second).
func startSecureRegistry(s stateDir, bin string) (*serverproc.Process, error) {
	if bin == "" {
		return nil, errors.New("inside: no --secure-registry-bin")
	}
	setup := registrytest.Setup{Dir: s.secureRegistry(), Config: filepath.Join(s.secureRegistry(), "config.yml")}
	p, err := serverproc.Start(setup.Command(bin), filepath.Join(s.run(), "secure-registry.log"))
	if err != nil {
		return nil, fmt.Errorf("the authenticating registry: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(SecureRegistryPort)
	if err := serverproc.WaitReady(p, "the authenticating registry at "+addr, serverproc.Listening(addr)); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}
