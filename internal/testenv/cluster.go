package testenv

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// Options configures Start.
type Options struct {
	// Name prefixes the cluster's unique name; lower-case letters, digits
	// and '-', at most 30 characters. Default "testenv".
	Name string
	// Nodes is the number of fake nodes, 1 to 20. Default 2.
	Nodes int
	// Dir is where the cluster directory (certificates, etcd data, logs,
	// kubeconfig) is created; default os.TempDir(). Stop removes it.
	Dir string
	// Log receives progress lines (build, start, stop); nil discards them.
	Log io.Writer
}

// Cluster is a running control plane: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok playing the kubelet of
// fake nodes, all child processes of this process on loopback ports.
type Cluster struct {
	name  string
	dir   string
	log   io.Writer
	bins  binaries.Set
	pki   *clusterPKI
	nodes []string

	ports struct{ etcd, etcdPeer, apiserver, controllerManager, scheduler int }

	kubeconfig []byte
	restConfig *rest.Config
	client     kubernetes.Interface

	mu    sync.Mutex // guards procs (StopAPIServer/StartAPIServer swap one)
	procs map[string]*proc

	stopOnce sync.Once
	stopErr  error
}

// Component names, also the names of their log files.
const (
	compEtcd              = "etcd"
	compAPIServer         = "kube-apiserver"
	compControllerManager = "kube-controller-manager"
	compScheduler         = "kube-scheduler"
	compKwok              = "kwok"
)

// PodCIDR is the range kwok gives pod IPs from. Nothing listens on them; a
// test that needs a pod to answer (the API server's service proxy dials a
// ready pod's IP) routes this range to its own loopback.
const PodCIDR = "10.244.0.0/16"

// stopOrder shuts the consumers down before what they consume.
var stopOrder = []string{compKwok, compScheduler, compControllerManager, compAPIServer, compEtcd}

const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	// kubeVersion is what the fake kubelets report; it matches the
	// control plane built from scripts/testenv/tools.
	kubeVersion = "v1.37.2"
)

//go:embed stages.yaml
var stagesYAML string

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$`)

func (o *Options) validate() error {
	if o.Name == "" {
		o.Name = "testenv"
	}
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("testenv: cluster name %q: want at most 30 lower-case letters, digits or '-', starting and ending with a letter or digit", o.Name)
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Nodes < 1 || o.Nodes > 20 {
		return fmt.Errorf("testenv: cluster %s: Nodes %d: want 1 to 20", o.Name, o.Nodes)
	}
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("testenv: cluster %s: Dir %q is not a directory", o.Name, o.Dir)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Start builds the control-plane binaries if the cache lacks them, then
// starts a cluster with a unique name on free loopback ports and returns
// once the API server is ready, every node is Ready, the scheduler and
// controller manager are healthy and the default service account exists.
// Invalid options fail before anything is started. If Start fails, nothing
// it started is left behind.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	bins, err := binaries.Ensure(ctx, binaries.Options{Log: opts.Log})
	if err != nil {
		return nil, fmt.Errorf("testenv: cluster %s: %w", opts.Name, err)
	}
	return start(ctx, opts, bins)
}

func start(ctx context.Context, opts Options, bins binaries.Set) (*Cluster, error) {
	began := time.Now()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	c := &Cluster{
		name:  opts.Name + "-" + hex.EncodeToString(suffix),
		log:   opts.Log,
		bins:  bins,
		procs: map[string]*proc{},
	}
	for i := range opts.Nodes {
		c.nodes = append(c.nodes, fmt.Sprintf("%s-node-%d", c.name, i))
	}
	dir, err := os.MkdirTemp(opts.Dir, "krgeobuk-testenv-"+c.name+"-")
	if err != nil {
		return nil, fmt.Errorf("testenv: cluster %s: %w", c.name, err)
	}
	c.dir = dir
	fmt.Fprintf(c.log, "testenv: starting cluster %s in %s\n", c.name, dir)
	if err := c.boot(ctx); err != nil {
		stopErr := c.Stop()
		return nil, errors.Join(fmt.Errorf("testenv: cluster %s: %w", c.name, err), stopErr)
	}
	fmt.Fprintf(c.log, "testenv: cluster %s ready in %s (%d nodes, API server %s)\n", c.name, time.Since(began).Round(100*time.Millisecond), len(c.nodes), c.restConfig.Host)
	return c, nil
}

// errPortTaken marks a start that lost a race for a port it had chosen.
var errPortTaken = errors.New("port taken")

func (c *Cluster) boot(ctx context.Context) error {
	var err error
	if c.pki, err = newPKI(filepath.Join(c.dir, "pki")); err != nil {
		return err
	}
	for _, d := range []string{"logs", "etcd", "kwok"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			return err
		}
	}
	stages := strings.ReplaceAll(stagesYAML, "${KUBE_VERSION}", kubeVersion)
	if err := os.WriteFile(c.path("kwok.yaml"), []byte(stages), 0o600); err != nil {
		return err
	}
	// A chosen port can be taken before the server binds it; start over on
	// new ports a few times.
	budget := retry.WithMaxRetries(3, retry.NewConstant(100*time.Millisecond))
	err = retry.Do(ctx, budget, func(ctx context.Context) error {
		err := c.bootStorageAndAPI(ctx)
		if errors.Is(err, errPortTaken) {
			c.stopProcs()
			_ = os.RemoveAll(c.path("etcd"))
			_ = os.MkdirAll(c.path("etcd"), 0o700)
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.bootControllers(ctx)
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) bootStorageAndAPI(ctx context.Context) error {
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	c.ports.etcd, c.ports.etcdPeer, c.ports.apiserver, c.ports.controllerManager, c.ports.scheduler = ports[0], ports[1], ports[2], ports[3], ports[4]
	if err := c.writeKubeconfig(); err != nil {
		return err
	}

	etcd := c.newProc(compEtcd, c.bins.Etcd, c.etcdArgs())
	if err := etcd.start(); err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, etcd, 60*time.Second, c.etcdHealthy); err != nil {
		return err
	}
	api := c.newProc(compAPIServer, c.bins.KubeAPIServer, c.apiserverArgs())
	if err := api.start(); err != nil {
		return err
	}
	return c.waitHealthy(ctx, api, 3*time.Minute, c.apiserverReady)
}

func (c *Cluster) bootControllers(ctx context.Context) error {
	kc := c.path("kubeconfig")
	common := []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--tls-cert-file=" + c.pki.Path("serving.crt"),
		"--tls-private-key-file=" + c.pki.Path("serving.key"),
		"--leader-elect=false",
	}
	kcm := c.newProc(compControllerManager, c.bins.KubeControllerManager, append(common,
		"--secure-port="+strconv.Itoa(c.ports.controllerManager),
		"--service-account-private-key-file="+c.pki.Path("sa.key"),
		"--root-ca-file="+c.pki.Path("ca.crt"),
		"--kube-api-qps=100", "--kube-api-burst=200",
	))
	sched := c.newProc(compScheduler, c.bins.KubeScheduler, append(common,
		"--secure-port="+strconv.Itoa(c.ports.scheduler),
	))
	kwok := c.newProc(compKwok, c.bins.Kwok, []string{
		"--kubeconfig=" + kc,
		"--config=" + c.path("kwok.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
		"--cidr=" + PodCIDR,
		"--node-ip=10.240.0.1",
		"-v=WARN",
	})
	// kwok reads ~/.kwok/kwok.yaml too unless its work dir points elsewhere.
	kwok.env = []string{"KWOK_WORKDIR=" + c.path("kwok")}
	for _, p := range []*proc{kcm, sched, kwok} {
		if err := p.start(); err != nil {
			return err
		}
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}
	checks := []struct {
		p     *proc
		check func(context.Context) error
	}{
		{kcm, c.componentHealthy(c.ports.controllerManager)},
		{sched, c.componentHealthy(c.ports.scheduler)},
		{kcm, c.defaultServiceAccount},
		{kwok, c.nodesReady},
	}
	for _, ch := range checks {
		if err := c.waitHealthy(ctx, ch.p, 2*time.Minute, ch.check); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) newProc(name, path string, args []string) *proc {
	p := &proc{name: name, path: path, args: args, logPath: filepath.Join(c.dir, "logs", name+".log")}
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p
}

func (c *Cluster) etcdArgs() []string {
	client := "http://127.0.0.1:" + strconv.Itoa(c.ports.etcd)
	peer := "http://127.0.0.1:" + strconv.Itoa(c.ports.etcdPeer)
	return []string{
		"--name=testenv",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=testenv=" + peer,
		// A test cluster's data dies with it; fsync only costs time.
		"--unsafe-no-fsync",
		"--auto-compaction-retention=1",
		"--log-level=warn",
	}
}

func (c *Cluster) apiserverArgs() []string {
	return []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(c.ports.etcd),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Nothing runs in a pod to use the kubernetes Service's endpoints,
		// and the reconciler refuses a loopback address.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.ports.apiserver),
		"--cert-dir=" + c.pki.Dir,
		"--tls-cert-file=" + c.pki.Path("serving.crt"),
		"--tls-private-key-file=" + c.pki.Path("serving.key"),
		"--client-ca-file=" + c.pki.Path("ca.crt"),
		"--service-account-key-file=" + c.pki.Path("sa.pub"),
		"--service-account-signing-key-file=" + c.pki.Path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	}
}

func (c *Cluster) writeKubeconfig() error {
	ctxName := "testenv-" + c.name
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{
		Server:                   "https://127.0.0.1:" + strconv.Itoa(c.ports.apiserver),
		CertificateAuthorityData: c.pki.PEM,
	}
	cfg.AuthInfos[ctxName] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.pki.adminCertPEM,
		ClientKeyData:         c.pki.adminKeyPEM,
	}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: ctxName, Namespace: "default"}
	cfg.CurrentContext = ctxName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if err := os.WriteFile(c.path("kubeconfig"), data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	// Tests create many objects quickly; client-go's default of 5 QPS
	// would make them wait on the client, not the cluster.
	rc.QPS, rc.Burst = 100, 200
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.kubeconfig, c.restConfig, c.client = data, rc, client
	return nil
}

// waitHealthy polls check until it passes, the program exits, or the bound
// runs out.
func (c *Cluster) waitHealthy(ctx context.Context, p *proc, bound time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(200*time.Millisecond), func(ctx context.Context) error {
		if done, _ := p.exited(); done {
			if p.logContains("address already in use") {
				return fmt.Errorf("%w: %w", errPortTaken, p.failure())
			}
			return p.failure()
		}
		if err := check(ctx); err != nil {
			last = err
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s not healthy within %s: %w (last check: %v); last lines of %s:\n%s", p.name, bound, ctx.Err(), last, p.logPath, tailFile(p.logPath, 15))
	}
	return err
}

func (c *Cluster) createNodes(ctx context.Context) error {
	for _, name := range c.nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname":    name,
					"kubernetes.io/os":          "linux",
					"kubernetes.io/arch":        "amd64",
					"type":                      "kwok",
					"testenv.krgeobuk.dev/node": "true",
				},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:              resource.MustParse("16"),
					corev1.ResourceMemory:           resource.MustParse("64Gi"),
					corev1.ResourcePods:             resource.MustParse("110"),
					corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
				},
			},
		}
		node.Status.Allocatable = node.Status.Capacity
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

func (c *Cluster) nodesReady(ctx context.Context) error {
	for _, name := range c.nodes {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if nodeReady(n) != corev1.ConditionTrue {
			return fmt.Errorf("node %s not Ready yet", name)
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status
		}
	}
	return corev1.ConditionUnknown
}

func (c *Cluster) defaultServiceAccount(ctx context.Context) error {
	_, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	return err
}

// Name is the cluster's unique name; node names start with it.
func (c *Cluster) Name() string { return c.name }

// RESTConfig returns a copy of the admin (system:masters) client
// configuration; callers may change their copy.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Kubeconfig returns the admin kubeconfig. It embeds the client key: keep
// it out of logs and reports.
func (c *Cluster) Kubeconfig() []byte { return append([]byte(nil), c.kubeconfig...) }

// KubeconfigPath is a file (mode 0600) holding Kubeconfig, removed by Stop.
func (c *Cluster) KubeconfigPath() string { return c.path("kubeconfig") }

// Nodes returns the names of the fake nodes.
func (c *Cluster) Nodes() []string { return append([]string(nil), c.nodes...) }

// Dir is the cluster directory; Stop removes it.
func (c *Cluster) Dir() string { return c.dir }

// Stop terminates every process of the cluster (SIGTERM, then SIGKILL after
// a grace period), reaps them, and removes the cluster directory. It is safe
// to call more than once and from several goroutines; later calls return
// the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		began := time.Now()
		err := c.stopProcs()
		if rmErr := os.RemoveAll(c.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", c.dir, rmErr))
		}
		if err != nil {
			c.stopErr = fmt.Errorf("testenv: stop cluster %s: %w", c.name, err)
		}
		fmt.Fprintf(c.log, "testenv: cluster %s stopped in %s\n", c.name, time.Since(began).Round(100*time.Millisecond))
	})
	return c.stopErr
}

func (c *Cluster) stopProcs() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, name := range stopOrder {
		if p := c.procs[name]; p != nil {
			errs = append(errs, p.stop(10*time.Second))
		}
	}
	return errors.Join(errs...)
}
