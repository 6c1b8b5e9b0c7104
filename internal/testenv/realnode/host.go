package realnode

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sethvargo/go-retry"
	"golang.org/x/sys/unix"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// envStage makes this package's init run a stage of the node instead of
// the program (a test binary) that imports it: "enter" joins the node's
// cgroups and execs unshare; "inside" is the node itself, under tini.
const (
	envStage   = "KRGEOBUK_REALNODE_STAGE"
	envCgroups = "KRGEOBUK_REALNODE_CGROUPS"
	envDir     = "KRGEOBUK_REALNODE_DIR"
)

func init() {
	switch os.Getenv(envStage) {
	case "":
		return
	case "enter":
		err := enter()
		fmt.Fprintf(os.Stderr, "realnode enter: %v\n", err)
		os.Exit(1)
	case "inside":
		if err := inside(os.Getenv(envDir)); err != nil {
			fmt.Fprintf(os.Stderr, "realnode: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// hierarchies are the cgroup v1 hierarchies the node gets a cgroup of its
// own in; name=systemd is needed by runc.
var hierarchies = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"}

// makeCgroups creates a cgroup named name under this process's cgroup in
// every hierarchy. The node's first process joins them before unsharing
// its cgroup namespace, so they become the namespace's cgroup root and the
// kubelet's cgroupRoot "/" lands inside them.
func makeCgroups(name string) ([]string, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	var made []string
	for _, h := range hierarchies {
		key := h
		if h == "systemd" {
			key = "name=systemd"
		}
		parent := filepath.Join("/sys/fs/cgroup", h, own[key])
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			_ = removeCgroups(made)
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		made = append(made, dir)
		if h == "cpuset" {
			// A cpuset cgroup takes no task until it has cpus and mems.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, f), v, 0o644)
				}
				if err != nil {
					_ = removeCgroups(made)
					return nil, fmt.Errorf("cgroup %s: %w", dir, err)
				}
			}
		}
	}
	return made, nil
}

// ownCgroups maps a controller (or name=systemd) to this process's cgroup
// path in its hierarchy.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range splitLines(string(data)) {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(f[1], ",") {
			out[ctrl] = f[2]
		}
	}
	for _, h := range hierarchies {
		key := h
		if h == "systemd" {
			key = "name=systemd"
		}
		if _, ok := out[key]; !ok {
			return nil, fmt.Errorf("no cgroup v1 %s hierarchy for this process (/proc/self/cgroup); the real node needs cgroup v1", key)
		}
	}
	return out, nil
}

// removeCgroups removes the node's cgroups and everything the kubelet and
// runc created in them, deepest first. A cgroup with tasks cannot be
// removed: the namespace must be gone.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, top := range dirs {
		var all []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		slices.Reverse(all)
		for _, d := range all {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := retry.Do(ctx, retry.NewConstant(50*time.Millisecond), func(context.Context) error {
				if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
					return retry.RetryableError(err)
				}
				return nil
			})
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// enter runs as the node's first process: it joins the node's cgroups and
// becomes unshare, which makes the namespaces and runs tini as their pid 1
// with this program's "inside" stage under it.
func enter() error {
	for _, dir := range strings.Split(os.Getenv(envCgroups), ":") {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return err
	}
	tini, err := exec.LookPath("tini")
	if err != nil {
		return err
	}
	// exec does not dedupe: drop the "enter" stage before naming the next.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envStage+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, envStage+"=inside")
	// --kill-child: if unshare dies (the test process died, Pdeathsig),
	// tini and with it the whole pid namespace die too.
	return syscall.Exec(unshare, []string{"unshare", "--mount", "--net", "--pid", "--uts", "--ipc", "--cgroup",
		"--fork", "--propagation", "private", "--mount-proc", "--kill-child", "--",
		tini, "-s", "--", self}, env)
}

// startNamespace starts the "enter" stage and waits (bounded) for tini to
// appear, recording the namespaces it lives in.
func (c *Cluster) startNamespace() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := c.path("logs", "node.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envStage+"=enter", envCgroups+"="+strings.Join(c.cgroups, ":"), envDir+"="+c.dir)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	go func() {
		// Progress lines go to the log writer and the node's log file.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if strings.HasPrefix(line, "realnode: ") {
				fmt.Fprintln(c.log, line)
			}
		}
		_ = logFile.Close()
	}()
	if err := serverproc.Spawn(cmd); err != nil {
		_ = pw.Close()
		return fmt.Errorf("start the node's namespace: %w", err)
	}
	c.cmd = cmd
	go func() {
		c.waitErr = cmd.Wait()
		_ = pw.Close()
		close(c.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = retry.Do(ctx, retry.NewConstant(20*time.Millisecond), func(context.Context) error {
		select {
		case <-c.done:
			return fmt.Errorf("the namespace exited at once (%v): %s", c.waitErr, tailFile(logPath, 10))
		default:
		}
		// unshare's child is tini once it has exec'd.
		pid := serverproc.FirstChild(cmd.Process.Pid)
		if pid == 0 {
			return retry.RetryableError(errors.New("no namespace yet"))
		}
		pidNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		ownPidNS, _ := os.Readlink("/proc/self/ns/pid")
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); filepath.Base(exe) != "tini" || pidNS == ownPidNS {
			return retry.RetryableError(errors.New("tini not started yet"))
		}
		c.nsPID = pid
		c.pidNS = pidNS
		c.netNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		return nil
	})
	if err != nil {
		return fmt.Errorf("the node's namespace: %w", err)
	}
	return nil
}

// nsProcesses lists host pids of processes in the given pid or network
// namespace.
func nsProcesses(pidNS, netNS string) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/ns")
	for _, d := range dirs {
		p, _ := os.Readlink(filepath.Join(d, "pid"))
		n, _ := os.Readlink(filepath.Join(d, "net"))
		if (pidNS != "" && p == pidNS) || (netNS != "" && n == netNS) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			out = append(out, pid)
		}
	}
	return out
}

// forward serves l on the host: each connection is relayed to the same
// port on the node's loopback, dialled inside its network namespace.
func (c *Cluster) forward(l net.Listener) {
	target := "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	c.relay(l, func(ctx context.Context) (net.Conn, error) { return c.DialContext(ctx, "tcp", target) })
}

// Forward exposes addr of the node's network namespace (DataServerIP:3306,
// a pod IP and port) on a free port of the host's loopback, until Stop, and
// returns that host address: for host-side clients that cannot take a
// dialer (a database driver, a CLI).
func (c *Cluster) Forward(addr string) (string, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("realnode: forward %q: %w", addr, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("realnode: forward %s: %w", addr, err)
	}
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	if c.stopping {
		_ = l.Close()
		return "", errors.New("realnode: forward: the cluster is stopping")
	}
	c.listeners = append(c.listeners, l)
	c.relay(l, func(ctx context.Context) (net.Conn, error) { return c.DialContext(ctx, "tcp", addr) })
	return l.Addr().String(), nil
}

// relay serves l until it is closed: each connection is relayed to what
// dial connects to.
func (c *Cluster) relay(l net.Listener, dial func(context.Context) (net.Conn, error)) {
	c.fwdWG.Add(1)
	go func() {
		defer c.fwdWG.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				up, err := dial(ctx)
				cancel()
				if err != nil {
					return
				}
				defer func() { _ = up.Close() }()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, conn); closeWrite(up); done <- struct{}{} }()
				go func() { _, _ = io.Copy(conn, up); closeWrite(conn); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// dialInNetNS dials from inside the network namespace at nsPath.
func dialInNetNS(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	return inNetNS(nsPath, func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
}

// listenInNetNS listens inside the network namespace at nsPath; any
// goroutine may accept on the listener.
func listenInNetNS(nsPath, addr string) (net.Listener, error) {
	return inNetNS(nsPath, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}

// inNetNS runs open on a thread switched into the network namespace at
// nsPath: the socket it opens stays in that namespace wherever it is used
// from. The thread is never switched back: its goroutine ends locked, so the
// runtime discards it rather than let another goroutine run in the node's
// network.
func inNetNS[T any](nsPath string, open func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		f, err := os.Open(nsPath)
		if err != nil {
			res <- result{zero, fmt.Errorf("node network namespace: %w", err)}
			return
		}
		defer func() { _ = f.Close() }()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{zero, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		v, err := open()
		res <- result{v, err}
	}()
	r := <-res
	return r.v, r.err
}

// NodeBinaries returns the control plane's and the node's programs from
// the testenv cache, building them if missing (make testenv builds them
// ahead of time).
func NodeBinaries(ctx context.Context, log io.Writer) (binaries.Set, error) {
	return binaries.Ensure(ctx, binaries.Options{Log: log})
}

func checkBinaries(s binaries.Set) error {
	var missing []string
	for name, p := range map[string]string{
		"etcd": s.Etcd, "kube-apiserver": s.KubeAPIServer, "kube-controller-manager": s.KubeControllerManager,
		"kube-scheduler": s.KubeScheduler, "kubelet": s.Kubelet, "kube-proxy": s.KubeProxy,
		"containerd": s.Containerd, "containerd-shim-runc-v2": s.ContainerdShim, "coredns": s.CoreDNS,
		"kube-network-policies": s.NetworkPolicies, "pause": s.Pause,
	} {
		fi, err := os.Stat(p)
		if p == "" || err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s (%q)", name, p))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("programs missing or not executable: %s", strings.Join(missing, ", "))
	}
	return nil
}

// tools are the Debian programs the node runs, with their packages.
var tools = map[string]string{
	"unshare": "util-linux", "nsenter": "util-linux", "setpriv": "util-linux", "tini": "tini",
	"runc": "runc", "ip": "iproute2", "nft": "nftables", "conntrack": "conntrack",
	"iptables": "iptables",
}

func checkTools() error {
	var missing []string
	for tool, pkg := range tools {
		if _, err := lookPath(tool); err != nil {
			missing = append(missing, tool+" (Debian package "+pkg+")")
		}
	}
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		missing = append(missing, "/usr/lib/cni/ptp (Debian package containernetworking-plugins)")
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("missing: %s; run scripts/install-deps.sh", strings.Join(missing, ", "))
	}
	return nil
}

// lookPath finds a program on PATH or in the sbin folders, where Debian
// keeps ip, nft and runc.
func lookPath(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", tool)
}

// registryHostsDir, in the cluster directory, is containerd's registry
// hosts folder (config_path): a registry's hosts.toml there sends the
// node's pulls from it elsewhere.
const registryHostsDir = "registry-hosts"

// MirrorOption says how the node's containerd talks to a mirrored registry.
type MirrorOption func(*mirror)

type mirror struct {
	caFile     string
	authHeader string
}

// MirrorTLS makes the node speak TLS to the registry and trust the CA in the
// PEM file caFile (the registry's certificate must name 127.0.0.1: the node
// dials it through a relay on its own loopback).
func MirrorTLS(caFile string) MirrorOption { return func(m *mirror) { m.caFile = caFile } }

// MirrorBasicAuth gives the node's containerd the registry's credentials, as
// a node-level pull credential (hosts.toml header) would on a real node.
func MirrorBasicAuth(username, password string) MirrorOption {
	return func(m *mirror) {
		m.authHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
	}
}

// MirrorRegistry lets the node pull images named after a registry the
// calling process reaches (host:port; plain HTTP unless MirrorTLS), such as
// a Dagger engine's registry: a listener inside the node's network relays
// each connection to addr, dialled from here, and containerd's hosts.toml
// for addr points at that listener. Image references then read the same on
// both sides, as with Registry().
func (c *Cluster) MirrorRegistry(addr string, opts ...MirrorOption) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("realnode: mirror %q: %w", addr, err)
	}
	var m mirror
	for _, o := range opts {
		o(&m)
	}
	l, err := listenInNetNS(c.netNSPath(), "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("realnode: mirror %s: %w", addr, err)
	}
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	if c.stopping {
		_ = l.Close()
		return errors.New("realnode: mirror: the cluster is stopping")
	}
	c.listeners = append(c.listeners, l)
	c.relay(l, func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", addr) })
	dir := c.path(registryHostsDir, addr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	scheme := "http://"
	if m.caFile != "" {
		scheme = "https://"
	}
	var hosts strings.Builder
	fmt.Fprintf(&hosts, "server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", scheme+addr, scheme+l.Addr().String())
	if m.caFile != "" {
		fmt.Fprintf(&hosts, "  ca = %q\n", m.caFile)
	}
	if m.authHeader != "" {
		fmt.Fprintf(&hosts, "  [host.%q.header]\n    authorization = %q\n", scheme+l.Addr().String(), m.authHeader)
	}
	// 0600: it may hold the registry's credentials
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts.String()), 0o600)
}
