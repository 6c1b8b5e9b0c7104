package realnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sethvargo/go-retry"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/pki"
)

// Addresses inside the node's network namespace. They exist only there:
// the host never routes to them, so they clash with nothing.
const (
	// NodeIP is the node's address (a veth end): the kubelet's node IP,
	// the API server's advertised address behind the kubernetes Service,
	// and CoreDNS's listening address behind the kube-dns Service.
	NodeIP = "10.200.0.2"
	// DataServerIP is the veth's other end, in a network namespace of its
	// own (the data server's, like a host beside the node), which pods reach
	// through the node's routing and so through NetworkPolicy egress rules.
	// Servers a test runs with DataServer().Command listen here (MariaDB,
	// Redis as the data server).
	DataServerIP = "10.200.0.1"
	// PodCIDR is the range host-local gives pod IPs from.
	PodCIDR = "10.244.0.0/24"
	// ServiceCIDR is the Services' ClusterIP range.
	ServiceCIDR = "10.96.0.0/16"
	// DNSServiceIP is the kube-dns Service's ClusterIP, the kubelet's
	// clusterDNS.
	DNSServiceIP = "10.96.0.10"
	// ClusterDomain is the DNS domain of Services.
	ClusterDomain = "cluster.local"
	// PauseImageRepo is where Start pushes the pause image in Registry();
	// containerd pins it as the sandbox image.
	PauseImageRepo = "krgeobuk/pause"
	pauseTag       = "3.10"

	apiServiceIP = "10.96.0.1"
	// apiServerUID runs the kube-apiserver as a non-root user, as a
	// managed control plane is not root on the node: kube-network-policies
	// admits the node's uid 0 traffic, so a root API server would pass
	// through every policy.
	apiServerUID = 65532
)

// Options configures Start.
type Options struct {
	// Name prefixes the cluster's unique name; lower-case letters, digits
	// and '-', at most 20 characters. Default "realnode".
	Name string
	// Dir is where the cluster directory is created; default os.TempDir().
	// Stop removes it.
	Dir string
	// Log receives a line per boot step and the node's progress; nil
	// discards them.
	Log io.Writer
	// Binaries overrides the programs (tests of this package's failure
	// paths); nil finds them with NodeBinaries.
	Binaries *binaries.Set
}

// Cluster is a real single-node cluster running in private namespaces.
type Cluster struct {
	name, node, dir string
	log             io.Writer
	pki             *pki.CA
	bins            binaries.Set

	apiPort, registryPort int

	cmd     *exec.Cmd // unshare
	done    chan struct{}
	waitErr error
	nsPID   int // tini, pid 1 of the namespace as the host sees it
	netNS   string
	pidNS   string
	cgroups []string

	fwdMu     sync.Mutex // guards listeners and stopping
	listeners []net.Listener
	stopping  bool
	fwdWG     sync.WaitGroup

	kubeconfig []byte
	restConfig *rest.Config

	stopOnce sync.Once
	stopErr  error
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$`)

func (o *Options) validate() error {
	if o.Name == "" {
		o.Name = "realnode"
	}
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("realnode: cluster name %q: want at most 20 lower-case letters, digits or '-', starting and ending with a letter or digit", o.Name)
	}
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("realnode: cluster %s: Dir %q is not a directory", o.Name, o.Dir)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if os.Geteuid() != 0 {
		return errors.New("realnode: a real node needs root (namespaces, mounts, cgroups, netfilter)")
	}
	return nil
}

// bootConfig is what the host hands the program inside the namespace
// (config.json in the cluster directory).
type bootConfig struct {
	Dir          string       `json:"dir"`
	Name         string       `json:"name"`
	Node         string       `json:"node"`
	APIPort      int          `json:"apiPort"`
	RegistryPort int          `json:"registryPort"`
	Bins         binaries.Set `json:"bins"`
}

// Start boots a real node: etcd, the control plane, containerd, kubelet,
// kube-proxy, kube-network-policies, CoreDNS and a registry, inside one
// private set of namespaces. It returns once the node is Ready, the
// default ServiceAccount exists, kube-proxy, CoreDNS and the policy agent
// answer and the pause image is in the registry. Invalid options fail
// before anything starts; a failed Start leaves nothing behind.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var bins binaries.Set
	if opts.Binaries != nil {
		bins = *opts.Binaries
	} else {
		var err error
		if bins, err = NodeBinaries(ctx, opts.Log); err != nil {
			return nil, fmt.Errorf("realnode: cluster %s: %w", opts.Name, err)
		}
	}
	if err := checkBinaries(bins); err != nil {
		return nil, fmt.Errorf("realnode: cluster %s: %w", opts.Name, err)
	}
	if err := checkTools(); err != nil {
		return nil, fmt.Errorf("realnode: cluster %s: %w", opts.Name, err)
	}
	began := time.Now()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	c := &Cluster{name: opts.Name + "-" + hex.EncodeToString(suffix), log: opts.Log, done: make(chan struct{})}
	c.node = c.name + "-node"
	if err := SweepStale(opts.Dir); err != nil {
		c.logf("%v", err) // another's leftovers do not stop this node
	}
	// MkdirTemp appends "-<random digits>" to the owner suffix.
	dir, err := os.MkdirTemp(opts.Dir, "krgeobuk-realnode-"+c.name+ownerSuffix()+"-")
	if err != nil {
		return nil, fmt.Errorf("realnode: cluster %s: %w", c.name, err)
	}
	c.dir = dir
	c.bins = bins
	c.logf("starting cluster %s in %s", c.name, dir)
	if err := c.boot(ctx, bins); err != nil {
		stopErr := c.Stop()
		return nil, errors.Join(fmt.Errorf("realnode: cluster %s: %w", c.name, err), stopErr)
	}
	c.logf("cluster %s ready in %s (node %s, API server %s, registry %s)", c.name, time.Since(began).Round(100*time.Millisecond), c.node, c.restConfig.Host, c.Registry())
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "realnode: "+format+"\n", args...)
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

func (c *Cluster) boot(ctx context.Context, bins binaries.Set) error {
	var err error
	if c.pki, err = newPKI(c.path("pki"), c.node); err != nil {
		return err
	}
	// Both ports are held on the host's loopback from now on (the
	// forwarders), so nothing on the host can take them; inside the
	// namespace the same numbers are free (a fresh network namespace).
	for _, p := range []*int{&c.apiPort, &c.registryPort} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("host port: %w", err)
		}
		c.listeners = append(c.listeners, l)
		*p = l.Addr().(*net.TCPAddr).Port
	}
	if err := c.writeKubeconfigs(); err != nil {
		return err
	}
	cfg := bootConfig{Dir: c.dir, Name: c.name, Node: c.node, APIPort: c.apiPort, RegistryPort: c.registryPort, Bins: bins}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.path("config.json"), data, 0o600); err != nil {
		return err
	}
	if c.cgroups, err = makeCgroups("krgeobuk-realnode-" + c.name + ownerSuffix()); err != nil {
		return err
	}
	if err := c.startNamespace(); err != nil {
		return err
	}
	for _, l := range c.listeners {
		c.forward(l)
	}
	return c.waitReady(ctx)
}

// bootBound bounds the whole boot inside the namespace. Measured: 7-12 s
// on the shared 2-core machine; generous for a loaded CI.
const bootBound = 4 * time.Minute

// waitReady waits for the program inside to report the node ready (or
// failed), or to exit.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, bootBound)
	defer cancel()
	err := retry.Do(ctx, retry.NewConstant(100*time.Millisecond), func(ctx context.Context) error {
		select {
		case <-c.done:
			return fmt.Errorf("the node's namespace exited during boot (%v); last lines of %s:\n%s", c.waitErr, c.path("logs", "node.log"), tailFile(c.path("logs", "node.log"), 30))
		default:
		}
		if msg, err := os.ReadFile(c.path("failed")); err == nil {
			return fmt.Errorf("boot failed: %s", msg)
		}
		if _, err := os.Stat(c.path("ready")); err != nil {
			return retry.RetryableError(errors.New("not ready"))
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("node not ready within %s: %w; last lines of %s:\n%s", bootBound, ctx.Err(), c.path("logs", "node.log"), tailFile(c.path("logs", "node.log"), 30))
	}
	return err
}

// writeKubeconfigs writes a kubeconfig per client identity into the pki
// folder, all naming https://127.0.0.1:P: the host's loopback and the
// node's lead to the same server (see doc.go).
func (c *Cluster) writeKubeconfigs() error {
	server := "https://127.0.0.1:" + strconv.Itoa(c.apiPort)
	for _, id := range clientIdentities(c.node) {
		cert, err := os.ReadFile(c.pki.Path(id.file + ".crt"))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(c.pki.Path(id.file + ".key"))
		if err != nil {
			return err
		}
		data, err := kubeconfig("realnode-"+c.name, server, c.pki.PEM, cert, key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.pki.Path(id.file+".kubeconfig"), data, 0o600); err != nil {
			return err
		}
		if id.file != "admin" {
			continue
		}
		rc, err := clientcmd.RESTConfigFromKubeConfig(data)
		if err != nil {
			return err
		}
		// Tests create many objects quickly; client-go's default of 5 QPS
		// would make them wait on the client, not the cluster.
		rc.QPS, rc.Burst = 100, 200
		c.kubeconfig, c.restConfig = data, rc
		if err := os.WriteFile(c.path("kubeconfig"), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func kubeconfig(name, server string, ca, cert, key []byte) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return data, nil
}

// Name is the cluster's unique name.
func (c *Cluster) Name() string { return c.name }

// NodeName is the real node's name.
func (c *Cluster) NodeName() string { return c.node }

// RESTConfig returns a copy of the admin (system:masters) client
// configuration, https://127.0.0.1:<port> on the host.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Kubeconfig returns the admin kubeconfig. It embeds the client key: keep
// it out of logs and reports.
func (c *Cluster) Kubeconfig() []byte { return append([]byte(nil), c.kubeconfig...) }

// KubeconfigPath is a file (mode 0600) holding Kubeconfig, removed by Stop.
func (c *Cluster) KubeconfigPath() string { return c.path("kubeconfig") }

// Registry is the local OCI registry's host:port, 127.0.0.1:<port>: the
// same spelling reaches the same registry from the host (tests push there)
// and from the node (containerd pulls from there), so an image reference
// means one image on both sides. Plain HTTP.
func (c *Cluster) Registry() string { return "127.0.0.1:" + strconv.Itoa(c.registryPort) }

// PauseImage is the sandbox image's reference in Registry().
func (c *Cluster) PauseImage() string { return c.Registry() + "/" + PauseImageRepo + ":" + pauseTag }

// NodeIP is the node's address, reachable from pods.
func (c *Cluster) NodeIP() string { return NodeIP }

// DataServerIP is an address of the node's network namespace that pods
// reach; run servers there with Command.
func (c *Cluster) DataServerIP() string { return DataServerIP }

// Kubectl returns a kubectl command (the control plane's build) run as the
// admin against this cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.bins.Kubectl, append([]string{"--kubeconfig=" + c.KubeconfigPath()}, args...)...)
}

// ResidentMemory sums the resident memory (VmRSS) of every process in the
// node's pid namespace, by program name, in bytes.
func (c *Cluster) ResidentMemory() map[string]uint64 {
	out := map[string]uint64{}
	for _, pid := range nsProcesses(c.pidNS, "") {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range splitLines(string(status)) {
			var kb uint64
			if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
				out[strings.TrimSpace(string(comm))] += kb * 1024
			}
		}
	}
	return out
}

// Dir is the cluster directory (logs/ holds every component's log); Stop
// removes it.
func (c *Cluster) Dir() string { return c.dir }

// Command returns a command that runs name with args in the node's network
// namespace only (its files, users and processes stay the host's). The
// caller starts, stops and reaps it, before Stop.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + c.netNSPath(), "--", name}, args...)...)
}

// DialContext dials an address inside the node's network namespace (a pod
// IP, a Service's ClusterIP, DataServerIP) from the host process, as the
// node's root: NetworkPolicies let that through, as they let the kubelet's
// probes.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialInNetNS(ctx, c.netNSPath(), network, addr)
}

// dataServerNetNSFile, in the cluster directory, holds the identity of the
// data server's network namespace (net:[inode]), written by the node.
const dataServerNetNSFile = "data-server.netns"

// Network is one network namespace of the node a host process can run
// servers in (Command) and reach them from (DialContext).
type Network struct{ path string }

// Command returns a command that runs name with args in the network
// namespace only; the caller starts, stops and reaps it, before Stop.
func (n Network) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.path, "--", name}, args...)...)
}

// DialContext dials an address from inside the network namespace.
func (n Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialInNetNS(ctx, n.path, network, addr)
}

// DataServer is the data server's network namespace, where DataServerIP
// lives: run the stores there, listening on DataServerIP.
func (c *Cluster) DataServer() (Network, error) {
	id, err := os.ReadFile(c.path(dataServerNetNSFile))
	if err != nil {
		return Network{}, fmt.Errorf("data server network: %w", err)
	}
	for _, pid := range nsProcesses(c.pidNS, "") {
		p := fmt.Sprintf("/proc/%d/ns/net", pid)
		if l, _ := os.Readlink(p); l == string(id) {
			return Network{path: p}, nil
		}
	}
	return Network{}, fmt.Errorf("data server network %s: no process of the node holds it", id)
}

func (c *Cluster) netNSPath() string { return fmt.Sprintf("/proc/%d/ns/net", c.nsPID) }

// Stop ends every process of the node (SIGTERM to the namespace's init,
// which stops the components in order; SIGKILL after a bound), then removes
// the node's cgroups and the cluster directory, and checks that no process
// of its namespaces remains. Safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		began := time.Now()
		var errs []error
		errs = append(errs, c.stopNamespace())
		c.fwdMu.Lock()
		c.stopping = true
		for _, l := range c.listeners {
			_ = l.Close()
		}
		c.fwdMu.Unlock()
		c.fwdWG.Wait()
		errs = append(errs, removeCgroups(c.cgroups))
		if c.dir != "" {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", c.dir, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			c.stopErr = fmt.Errorf("realnode: stop cluster %s: %w", c.name, err)
		}
		c.logf("cluster %s stopped in %s", c.name, time.Since(began).Round(100*time.Millisecond))
	})
	return c.stopErr
}

// stopGrace bounds the components' own shutdown after SIGTERM; then the
// namespace's init is killed, which kills everything in it.
const stopGrace = 15 * time.Second

func (c *Cluster) stopNamespace() error {
	if c.cmd == nil {
		return nil
	}
	if c.nsPID != 0 {
		_ = syscall.Kill(c.nsPID, syscall.SIGTERM)
	} else {
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-c.done:
	case <-time.After(stopGrace):
		c.logf("node did not stop within %s of SIGTERM; killing its namespace", stopGrace)
		if c.nsPID != 0 {
			_ = syscall.Kill(c.nsPID, syscall.SIGKILL)
		}
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("unshare (pid %d) did not exit 10s after SIGKILL", c.cmd.Process.Pid)
		}
	}
	// Processes of a dead pid namespace linger in /proc until reaped.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var left []int
	_ = retry.Do(ctx, retry.NewConstant(100*time.Millisecond), func(context.Context) error {
		if left = nsProcesses(c.pidNS, c.netNS); len(left) > 0 {
			return retry.RetryableError(fmt.Errorf("%d processes left", len(left)))
		}
		return nil
	})
	if len(left) > 0 {
		return fmt.Errorf("processes %v still in the node's namespaces", left)
	}
	return nil
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return lastLines(string(data), n)
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
