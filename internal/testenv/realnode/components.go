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

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const (
	agentNamespace = "kube-system"
	agentName      = "kube-network-policies"
	// corednsName is CoreDNS's Deployment and ServiceAccount in kube-system;
	// its pods carry k8s-app=kube-dns, which NetworkPolicies that allow DNS
	// select (the chart's do).
	corednsName = "coredns"
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
		}, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "kube-system", Name: corednsName}},
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
		Spec:       corev1.ServiceSpec{ClusterIP: DNSServiceIP, Ports: ports, Selector: map[string]string{"k8s-app": "kube-dns"}},
	}
	if err := errOf(core.Services("kube-system").Create(ctx, svc, metav1.CreateOptions{})); create(err) != nil {
		return err
	}
	csa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: "kube-system"}}
	return create(errOf(core.ServiceAccounts("kube-system").Create(ctx, csa, metav1.CreateOptions{})))
}

// errOf keeps the error of a create call.
func errOf[T any](_ T, err error) error { return err }

func (n *node) containerd(ctx context.Context) error {
	files := map[string]string{
		"/etc/containerd/config.toml": containerdConfig(n.cfg.RegistryPort, n.path(registryHostsDir)),
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

func containerdConfig(registryPort int, hostsDir string) string {
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
    config_path = %q

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
`, registryPort, PauseImageRepo, pauseTag, hostsDir)
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

// coredns runs CoreDNS as a Deployment in kube-system, as clusters do, not
// as a process on the node: NetworkPolicies allow DNS by selecting its pods
// (k8s-app=kube-dns in kube-system), so a node-level DNS server would be
// refused by every policy that allows only those.
func (n *node) coredns(ctx context.Context) error {
	image, err := pushBinaryImage(ctx, "127.0.0.1:"+strconv.Itoa(n.cfg.RegistryPort)+"/realnode/coredns:node", n.cfg.Bins.CoreDNS, "/coredns",
		[]string{"-conf", "/etc/coredns/Corefile"}, nil)
	if err != nil {
		return err
	}
	corefile := fmt.Sprintf(`.:53 {
    errors
    health :8080
    ready :8181
    kubernetes %s in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loop
}
`, ClusterDomain)
	core := n.client.CoreV1()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: "kube-system"}, Data: map[string]string{"Corefile": corefile}}
	if _, err := core.ConfigMaps("kube-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	labels := map[string]string{"k8s-app": "kube-dns"}
	root := int64(0)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: corednsName, Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: corednsName,
					DNSPolicy:          corev1.DNSDefault,
					Containers: []corev1.Container{{
						Name: "coredns", Image: image,
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
						},
						// Port 53 needs root or CAP_NET_BIND_SERVICE.
						SecurityContext: &corev1.SecurityContext{RunAsUser: &root, RunAsGroup: &root},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181)}},
							PeriodSeconds: 1},
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 10, FailureThreshold: 5},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/coredns", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: corednsName}}}}},
				},
			},
		},
	}
	if _, err := n.client.AppsV1().Deployments("kube-system").Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return n.waitFor(ctx, "coredns", nil, 2*time.Minute, func(ctx context.Context) error {
		d, err := n.client.AppsV1().Deployments("kube-system").Get(ctx, corednsName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas < 1 {
			return fmt.Errorf("CoreDNS pod not ready yet")
		}
		return nil
	})
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
