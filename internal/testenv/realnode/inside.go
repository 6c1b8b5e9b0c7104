package realnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/sethvargo/go-retry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// node is the program inside the namespaces (pid 2, under tini): it lays
// out the node's file system and network, then starts and watches every
// component, and stops them in reverse order on SIGTERM.
type node struct {
	cfg    bootConfig
	began  time.Time
	procs  []namedProc
	client kubernetes.Interface
}

type namedProc struct {
	name string
	p    *serverproc.Process
}

// overlayDirs are the host folders the node writes to; each gets an
// overlay whose upper layer is on a namespace-private tmpfs.
var overlayDirs = []string{"/etc", "/var", "/opt", "/usr/local/bin", "/usr/libexec"}

func inside(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	n := &node{began: time.Now()}
	if err := json.Unmarshal(data, &n.cfg); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-sigs
		cancel()
	}()
	err = n.boot(ctx)
	if err != nil {
		_ = os.WriteFile(filepath.Join(dir, "failed"), []byte(err.Error()), 0o600)
		n.stop()
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		n.stop()
		return err
	}
	n.step("node ready")
	// Watch: a component that dies is reported in the log; the host sees
	// the cluster misbehave and the log names why.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			n.step("stopping")
			n.stop()
			n.step("stopped")
			return nil
		case <-tick.C:
			for _, np := range n.procs {
				if np.p.Exited() && !reported[np.name] {
					reported[np.name] = true
					n.step("%s exited unexpectedly; see logs/%s.log", np.name, np.name)
				}
			}
		}
	}
}

func (n *node) step(format string, args ...any) {
	fmt.Printf("realnode: [%5.1fs] %s\n", time.Since(n.began).Seconds(), fmt.Sprintf(format, args...))
}

func (n *node) path(elem ...string) string {
	return filepath.Join(append([]string{n.cfg.Dir}, elem...)...)
}

func (n *node) boot(ctx context.Context) error {
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"file system (overlays, /run, sysfs, cgroup v1 hierarchies)", n.mounts},
		{"network (veth " + NodeIP + ", " + DataServerIP + ", ip_forward)", n.network},
		{"registry and pause image", n.registry},
		{"etcd", n.etcd},
		{"kube-apiserver (uid " + strconv.Itoa(apiServerUID) + ")", n.apiserver},
		{"controller-manager and scheduler", n.controllers},
		{"cluster objects (RBAC, kube-dns Service, agent token)", n.objects},
		{"containerd", n.containerd},
		{"kubelet: node Ready", n.kubelet},
		{"kube-proxy (nftables)", n.kubeProxy},
		{"CoreDNS", n.coredns},
		{"kube-network-policies", n.networkPolicies},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := time.Now()
		n.step("%s ...", s.what)
		if err := s.do(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		n.step("%s done in %s", s.what, time.Since(t).Round(10*time.Millisecond))
	}
	return nil
}

func (n *node) mounts(context.Context) error {
	scratch := n.path("ns")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("tmpfs %s: %w", scratch, err)
	}
	for i, d := range overlayDirs {
		upper, work := filepath.Join(scratch, strconv.Itoa(i), "upper"), filepath.Join(scratch, strconv.Itoa(i), "work")
		for _, x := range []string{upper, work} {
			if err := os.MkdirAll(x, 0o755); err != nil {
				return err
			}
		}
		if err := syscall.Mount("overlay", d, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, upper, work)); err != nil {
			return fmt.Errorf("overlay on %s: %w", d, err)
		}
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs /run: %w", err)
	}
	// containerd's overlay snapshots cannot sit on an overlay: plain bind
	// mounts of folders in the cluster directory.
	for dst, src := range map[string]string{"/var/lib/containerd": "containerd", "/var/lib/kubelet": "kubelet"} {
		for _, d := range []string{dst, n.path(src)} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		if err := syscall.Mount(n.path(src), dst, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dst, err)
		}
	}
	// A sysfs of the node's network namespace, and the cgroup v1
	// hierarchies again: inside the cgroup namespace their root is the
	// node's cgroup.
	if err := syscall.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("sysfs: %w", err)
	}
	if err := syscall.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs /sys/fs/cgroup: %w", err)
	}
	for _, h := range hierarchies {
		d := filepath.Join("/sys/fs/cgroup", h)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		opt := h
		if h == "systemd" {
			opt = "none,name=systemd"
		}
		if err := syscall.Mount("cgroup", d, "cgroup", 0, opt); err != nil {
			return fmt.Errorf("cgroup %s: %w", h, err)
		}
	}
	if err := syscall.Sethostname([]byte(n.cfg.Node)); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	files := map[string]string{
		"/etc/hosts":       "127.0.0.1 localhost\n" + NodeIP + " " + n.cfg.Node + "\n",
		"/etc/resolv.conf": "nameserver " + NodeIP + "\nsearch " + ClusterDomain + "\n",
		// Pods with dnsPolicy Default get this; there is no upstream.
		"/etc/kubernetes/resolv.conf": "nameserver " + NodeIP + "\n",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return copyFile(n.cfg.Bins.ContainerdShim, "/usr/local/bin/containerd-shim-runc-v2", 0o755)
}

func (n *node) network(context.Context) error {
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// No dummy links in this kernel: a veth pair. Its far end goes into a
	// network namespace of its own, the data server's: traffic from pods to
	// it is then routed through the node (forwarded, like traffic to a real
	// data server on another host) and so meets the NetworkPolicy agent,
	// which sees forwarded traffic only, never traffic to the node's own
	// addresses.
	for _, a := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "node0", "type", "veth", "peer", "name", "data0"},
		{"addr", "add", NodeIP + "/24", "dev", "node0"},
		{"link", "set", "node0", "up"},
		// kubelet and kube-proxy want a default route to find the node's
		// interface; nothing lies beyond it.
		{"route", "add", "default", "via", "10.200.0.254", "dev", "node0", "onlink"},
	} {
		if err := ip(a...); err != nil {
			return err
		}
	}
	holder := exec.Command("unshare", "--net", "--", n.cfg.Bins.Pause)
	if _, err := n.start("data-server-netns", holder); err != nil {
		return err
	}
	pid := strconv.Itoa(holder.Process.Pid)
	nsPath := "/proc/" + pid + "/ns/net"
	// unshare execs pause once the namespace exists; until then the holder
	// still shares the node's.
	own, _ := os.Readlink("/proc/self/ns/net")
	err := retry.Do(context.Background(), retry.WithMaxDuration(10*time.Second, retry.NewConstant(10*time.Millisecond)), func(context.Context) error {
		if l, _ := os.Readlink(nsPath); l == "" || l == own {
			return retry.RetryableError(errors.New("the data server's network namespace is not there yet"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	in := func(args ...string) error {
		if out, err := exec.Command("nsenter", append([]string{"--net=" + nsPath, "ip"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("data server: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ip("link", "set", "data0", "netns", pid); err != nil {
		return err
	}
	for _, a := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", DataServerIP + "/24", "dev", "data0"},
		{"link", "set", "data0", "up"},
		{"route", "add", "default", "via", NodeIP},
	} {
		if err := in(a...); err != nil {
			return err
		}
	}
	id, err := os.Readlink(nsPath)
	if err != nil {
		return err
	}
	// The host finds the namespace by this identity (the path above is in
	// the node's pid namespace).
	if err := os.WriteFile(n.path(dataServerNetNSFile), []byte(id), 0o644); err != nil {
		return err
	}
	for _, s := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet"} {
		if err := os.WriteFile("/proc/sys/"+s, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", s, err)
		}
	}
	return nil
}

func (n *node) registry(ctx context.Context) error {
	ln, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(n.cfg.RegistryPort))
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	blobs := n.path("registry")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		return err
	}
	logf, err := os.Create(n.path("logs", "registry.log"))
	if err != nil {
		return err
	}
	reg := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)), registry.Logger(log.New(logf, "", log.LstdFlags)))
	go func() { _ = (&http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second}).Serve(ln) }()
	ref := "127.0.0.1:" + strconv.Itoa(n.cfg.RegistryPort) + "/" + PauseImageRepo + ":" + pauseTag
	_, err = pushBinaryImage(ctx, ref, n.cfg.Bins.Pause, "/pause", nil, nil)
	return err
}

// start runs a component with its log in logs/<name>.log.
func (n *node) start(name string, cmd *exec.Cmd) (*serverproc.Process, error) {
	if cmd.Env == nil {
		cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	p, err := serverproc.Start(cmd, n.path("logs", name+".log"))
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, namedProc{name, p})
	return p, nil
}

// waitFor polls check until it passes, the component exits, or bound runs
// out; the error carries the end of the component's log.
func (n *node) waitFor(ctx context.Context, name string, p *serverproc.Process, bound time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(100*time.Millisecond), func(ctx context.Context) error {
		if p != nil && p.Exited() {
			return errExited
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		if last = check(cctx); last != nil {
			return retry.RetryableError(last)
		}
		return nil
	})
	if errors.Is(err, errExited) {
		return fmt.Errorf("%s exited; logs/%s.log:\n%s", name, name, lastLines(p.LogTail(), 20))
	}
	if err != nil {
		tail := ""
		if p != nil {
			tail = "\n" + lastLines(p.LogTail(), 20)
		}
		return fmt.Errorf("%s not ready within %s: %w (last check: %v); logs/%s.log:%s", name, bound, err, last, name, tail)
	}
	return nil
}

func lastLines(s string, k int) string {
	l := splitLines(s)
	if len(l) > k {
		l = l[len(l)-k:]
	}
	return strings.Join(l, "\n")
}

// tlsGet returns nil once url answers 200 over TLS signed by the cluster CA.
func (n *node) tlsGet(url string, clientCert string) func(context.Context) error {
	return func(ctx context.Context) error {
		ca, err := os.ReadFile(n.path("pki", "ca.crt"))
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if clientCert != "" {
			kp, err := tls.LoadX509KeyPair(n.path("pki", clientCert+".crt"), n.path("pki", clientCert+".key"))
			if err != nil {
				return err
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		return httpGet(ctx, &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, url)
	}
}

func plainGet(url string) func(context.Context) error {
	return func(ctx context.Context) error { return httpGet(ctx, http.DefaultClient, url) }
}

func httpGet(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

const (
	etcdPort     = 2379
	etcdPeerPort = 2380
)

func (n *node) etcd(ctx context.Context) error {
	client := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort)
	p, err := n.start("etcd", exec.Command(n.cfg.Bins.Etcd,
		"--name=node", "--data-dir="+n.path("etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=node="+peer,
		// A test cluster's data dies with it; fsync only costs time.
		"--unsafe-no-fsync", "--auto-compaction-retention=1", "--log-level=warn"))
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "etcd", p, time.Minute, plainGet(client+"/health"))
}

func (n *node) apiserver(ctx context.Context) error {
	// The API server's own copies of its key material, owned by its uid,
	// on the node's /run (a tmpfs of its mount namespace): the uid need
	// not traverse the folders above the cluster directory.
	own := "/run/kube-apiserver"
	if err := os.MkdirAll(own, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"ca.crt", "apiserver.crt", "apiserver.key", "sa.pub", "sa.key", "admin.crt", "admin.key"} {
		if err := copyFile(n.path("pki", f), filepath.Join(own, f), 0o600); err != nil {
			return err
		}
		if err := os.Chown(filepath.Join(own, f), apiServerUID, apiServerUID); err != nil {
			return err
		}
	}
	if err := os.Chown(own, apiServerUID, apiServerUID); err != nil {
		return err
	}
	f := func(name string) string { return filepath.Join(own, name) }
	port := strconv.Itoa(n.cfg.APIPort)
	args := []string{
		"--reuid=" + strconv.Itoa(apiServerUID), "--regid=" + strconv.Itoa(apiServerUID), "--clear-groups", "--",
		n.cfg.Bins.KubeAPIServer,
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=0.0.0.0",
		"--secure-port=" + port,
		// Pods reach the API server through the kubernetes Service, whose
		// endpoint is the node's address.
		"--advertise-address=" + NodeIP,
		"--tls-cert-file=" + f("apiserver.crt"),
		"--tls-private-key-file=" + f("apiserver.key"),
		"--client-ca-file=" + f("ca.crt"),
		"--kubelet-client-certificate=" + f("admin.crt"),
		"--kubelet-client-key=" + f("admin.key"),
		"--kubelet-certificate-authority=" + f("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc." + ClusterDomain,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
	}
	p, err := n.start("kube-apiserver", exec.Command("setpriv", args...))
	if err != nil {
		return err
	}
	if err := n.waitFor(ctx, "kube-apiserver", p, 3*time.Minute, n.tlsGet("https://127.0.0.1:"+port+"/readyz", "admin")); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", n.path("pki", "admin.kubeconfig"))
	if err != nil {
		return err
	}
	n.client, err = kubernetes.NewForConfig(rc)
	return err
}

func (n *node) controllers(ctx context.Context) error {
	common := func(id string, port int) []string {
		kc := n.path("pki", id+".kubeconfig")
		return []string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + n.path("pki", "components.crt"), "--tls-private-key-file=" + n.path("pki", "components.key"),
			"--leader-elect=false",
		}
	}
	kcm, err := n.start("kube-controller-manager", exec.Command(n.cfg.Bins.KubeControllerManager, append(common("controller-manager", 10257),
		"--service-account-private-key-file="+n.path("pki", "sa.key"),
		"--root-ca-file="+n.path("pki", "ca.crt"),
		"--use-service-account-credentials=true",
		"--kube-api-qps=100", "--kube-api-burst=200")...))
	if err != nil {
		return err
	}
	sched, err := n.start("kube-scheduler", exec.Command(n.cfg.Bins.KubeScheduler, common("scheduler", 10259)...))
	if err != nil {
		return err
	}
	if err := n.waitFor(ctx, "kube-controller-manager", kcm, 2*time.Minute, n.tlsGet("https://127.0.0.1:10257/healthz", "")); err != nil {
		return err
	}
	if err := n.waitFor(ctx, "kube-scheduler", sched, 2*time.Minute, n.tlsGet("https://127.0.0.1:10259/healthz", "")); err != nil {
		return err
	}
	return n.waitFor(ctx, "kube-controller-manager", kcm, 2*time.Minute, func(ctx context.Context) error {
		_, err := n.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func (n *node) stop() {
	procs := slices.Clone(n.procs)
	slices.Reverse(procs)
	// The kubelet first, so it restarts nothing; then every container and
	// shim at once: a stopped containerd leaves them running, and each
	// would otherwise sit out its grace period while the node is going
	// away anyway.
	keep := map[int]bool{1: true, os.Getpid(): true}
	for _, np := range procs {
		keep[np.p.Pid()] = true
		if np.name == "kubelet" {
			if err := np.p.Stop(); err != nil {
				n.step("stop %s: %v", np.name, err)
			}
		}
	}
	killContainers(keep)
	for _, np := range procs {
		if err := np.p.Stop(); err != nil {
			n.step("stop %s: %v", np.name, err)
		}
	}
}

// killContainers sends SIGKILL to every process of the node's pid
// namespace (this stage's view of /proc) that is not in keep.
func killContainers(keep map[int]bool) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || keep[pid] {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// errNotReady is a check's answer while a condition does not hold yet.
var errNotReady = errors.New("not ready")

var errExited = errors.New("exited")

func nodeReady(nd *corev1.Node) bool {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
