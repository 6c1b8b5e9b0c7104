package realnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	agentNamespace = "kube-system"
	agentName      = "kube-network-policies"
	corednsUser    = "krgeobuk-realnode-coredns"
	// saDir is where in-cluster clients look for their token and CA.
	saDir = "/run/secrets/kubernetes.io/serviceaccount"
)

// objects creates what the node's own components need from the API: read
// access for CoreDNS and the policy agent (a ServiceAccount, as the agent
// only reads in-cluster config) and the kube-dns Service, whose endpoint is
// CoreDNS on the node's address.
func (n *node) objects(ctx context.Context) error {
	rbac := n.client.RbacV1()
	create := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	read := []string{"get", "list", "watch"}
	roles := []struct {
		name    string
		rules   []rbacv1.PolicyRule
		subject rbacv1.Subject
	}{
		{"krgeobuk-realnode-coredns", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces", "endpoints"}, Verbs: read},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		}, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: corednsUser}},
		{"krgeobuk-realnode-network-policies", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: read},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		}, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: agentNamespace, Name: agentName}},
	}
	for _, r := range roles {
		if err := errOf(rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: r.name}, Rules: r.rules}, metav1.CreateOptions{})); create(err) != nil {
			return err
		}
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.name},
			Subjects:   []rbacv1.Subject{r.subject},
		}
		if err := errOf(rbac.ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})); create(err) != nil {
			return err
		}
	}
	core := n.client.CoreV1()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: agentName, Namespace: agentNamespace}}
	if err := errOf(core.ServiceAccounts(agentNamespace).Create(ctx, sa, metav1.CreateOptions{})); create(err) != nil {
		return err
	}
	tr, err := core.ServiceAccounts(agentNamespace).CreateToken(ctx, agentName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(7 * 24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("agent token: %w", err)
	}
	if err := os.MkdirAll(saDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(saDir, "token"), []byte(tr.Status.Token), 0o600); err != nil {
		return err
	}
	if err := copyFile(n.path("pki", "ca.crt"), filepath.Join(saDir, "ca.crt"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(saDir, "namespace"), []byte(agentNamespace), 0o600); err != nil {
		return err
	}

	ports := []corev1.ServicePort{
		{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
		{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec:       corev1.ServiceSpec{ClusterIP: DNSServiceIP, Ports: ports},
	}
	if err := errOf(core.Services("kube-system").Create(ctx, svc, metav1.CreateOptions{})); create(err) != nil {
		return err
	}
	var epPorts []discoveryv1.EndpointPort
	for _, p := range ports {
		epPorts = append(epPorts, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Protocol: ptr.To(p.Protocol), Port: ptr.To(p.Port)})
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kube-dns-node", Namespace: "kube-system", Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: "krgeobuk-realnode"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{NodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       epPorts,
	}
	return create(errOf(n.client.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, slice, metav1.CreateOptions{})))
}

// errOf keeps the error of a create call.
func errOf[T any](_ T, err error) error { return err }

func (n *node) containerd(ctx context.Context) error {
	files := map[string]string{
		"/etc/containerd/config.toml": containerdConfig(n.cfg.RegistryPort),
		// The registry is plain HTTP on loopback.
		"/etc/containerd/certs.d/127.0.0.1:" + strconv.Itoa(n.cfg.RegistryPort) + "/hosts.toml": fmt.Sprintf("server = \"http://127.0.0.1:%d\"\n\n[host.\"http://127.0.0.1:%d\"]\n  capabilities = [\"pull\", \"resolve\"]\n", n.cfg.RegistryPort, n.cfg.RegistryPort),
		"/etc/cni/net.d/10-krgeobuk.conflist":                                                   cniConfig,
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	p, err := n.start("containerd", exec.Command(n.cfg.Bins.Containerd, "--config", "/etc/containerd/config.toml"))
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "containerd", p, time.Minute, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", "/run/containerd/containerd.sock")
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func containerdConfig(registryPort int) string {
	return fmt.Sprintf(`version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "127.0.0.1:%d/%s:%s"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "/etc/containerd/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  # The machine's bounding set lacks CAP_SYS_RESOURCE: without this every
  # sandbox fails ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"
`, registryPort, PauseImageRepo, pauseTag)
}

// cniConfig: ptp gives each pod a /32 route through the node, so pod
// traffic is routed through the node's netfilter hooks (where kube-proxy
// and the policy agent act) without bridge netfilter.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "krgeobuk",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "` + PodCIDR + `"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

func (n *node) kubelet(ctx context.Context) error {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
# The host has cgroup v1; kubelet 1.37 refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /
cgroupsPerQOS: true
clusterDNS: [%q]
clusterDomain: %q
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: /etc/kubernetes/resolv.conf
tlsCertFile: %q
tlsPrivateKeyFile: %q
readOnlyPort: 0
failSwapOn: false
serializeImagePulls: false
# The shared disk may be fuller than the defaults tolerate; a test node must
# not evict or taint itself over the host's disk.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
`, n.path("pki", "ca.crt"), DNSServiceIP, ClusterDomain, n.path("pki", "kubelet-serving.crt"), n.path("pki", "kubelet-serving.key"))
	if err := os.WriteFile(n.path("kubelet.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	p, err := n.start("kubelet", exec.Command(n.cfg.Bins.Kubelet,
		"--config="+n.path("kubelet.yaml"),
		"--kubeconfig="+n.path("pki", "kubelet.kubeconfig"),
		"--hostname-override="+n.cfg.Node,
		"--node-ip="+NodeIP,
		"--v=1"))
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "kubelet", p, 2*time.Minute, func(ctx context.Context) error {
		nd, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.Node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(nd) {
			return fmt.Errorf("node %s: %w", n.cfg.Node, errNotReady)
		}
		return nil
	})
}

func (n *node) kubeProxy(ctx context.Context) error {
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: %q}
hostnameOverride: %q
clusterCIDR: %q
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The conntrack table size is the host's (not per network namespace):
# leave it and the timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, n.path("pki", "kube-proxy.kubeconfig"), n.cfg.Node, PodCIDR)
	if err := os.WriteFile(n.path("kube-proxy.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	p, err := n.start("kube-proxy", exec.Command(n.cfg.Bins.KubeProxy, "--config="+n.path("kube-proxy.yaml"), "--v=1"))
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "kube-proxy", p, time.Minute, plainGet("http://127.0.0.1:10256/healthz"))
}

func (n *node) coredns(ctx context.Context) error {
	corefile := fmt.Sprintf(`.:53 {
    errors
    health 127.0.0.1:10280
    ready 127.0.0.1:10281
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s realnode-%s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
`, ClusterDomain, n.path("pki", "coredns.kubeconfig"), n.cfg.Name)
	if err := os.WriteFile(n.path("Corefile"), []byte(corefile), 0o600); err != nil {
		return err
	}
	p, err := n.start("coredns", exec.Command(n.cfg.Bins.CoreDNS, "-conf", n.path("Corefile")))
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "coredns", p, time.Minute, plainGet("http://127.0.0.1:10281/ready"))
}

func (n *node) networkPolicies(ctx context.Context) error {
	cmd := exec.Command(n.cfg.Bins.NetworkPolicies,
		"--hostname-override="+n.cfg.Node,
		"--nfqueue-id=100",
		"--metrics-bind-address=127.0.0.1:10282",
		// No NRI plugin socket is configured in containerd; pod IPs come
		// from the API.
		"--disable-nri",
		"--v=2")
	// The agent reads in-cluster config only.
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT="+strconv.Itoa(n.cfg.APIPort))
	p, err := n.start("kube-network-policies", cmd)
	if err != nil {
		return err
	}
	return n.waitFor(ctx, "kube-network-policies", p, time.Minute, func(ctx context.Context) error {
		if err := plainGet("http://127.0.0.1:10282/metrics")(ctx); err != nil {
			return err
		}
		// Its table exists once it has synced its rules at least once.
		out, err := exec.CommandContext(ctx, "nft", "list", "table", "inet", "kube-network-policies").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list table inet kube-network-policies: %w: %s", err, out)
		}
		return nil
	})
}
