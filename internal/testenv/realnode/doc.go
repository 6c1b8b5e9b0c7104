// Package realnode runs a real single-node Kubernetes cluster for tests:
// pods really run. It is a sibling of package testenv (kwok nodes, nothing
// runs), not an option of it: the two share the control plane's binaries
// (package binaries) but little else — this cluster lives in private
// namespaces and has no kwok faults, testenv's cluster is plain child
// processes on loopback and injects faults. Keeping them apart keeps each
// small; faults on the real node are real (an image that exits 1, one that
// does not exist).
//
// # What runs
//
// Inside ONE set of private namespaces (mount, net, pid, uts, ipc, cgroup;
// `unshare --fork --kill-child` with tini as pid 1 and this package's
// "inside" stage under it, a re-exec of the test binary):
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler (the
// simulated cluster's binaries), containerd (Debian's runc, the sandbox
// image pinned to the pause image in the local registry), kubelet (cgroup
// v1, cgroupfs driver, failCgroupV1: false, cgroupRoot /), CNI ptp +
// host-local + portmap, kube-proxy in nftables mode, kube-network-policies
// (in-cluster config: a ServiceAccount token and the CA at the in-cluster
// paths, KUBERNETES_SERVICE_HOST/PORT), CoreDNS as a Deployment in
// kube-system (pods labelled k8s-app=kube-dns behind the kube-dns Service,
// 10.96.0.10: NetworkPolicies allow DNS by selecting those pods, so DNS on
// the node itself would be refused by them), and go-containerregistry's
// registry. ../../../../shared/REAL-NODE.md in the steering repo lists the
// settings this kernel requires and why.
//
// The kube-apiserver runs as a NON-ROOT uid (65532), as a managed control
// plane is not root on the node: kube-network-policies accepts uid 0
// traffic from the node, so a root API server would pass through every
// NetworkPolicy and hide that, for example, the service proxy is blocked by
// a default-deny policy. Probes come from the kubelet (root) and are not
// blocked, as on a real cluster.
//
// # Addresses: one spelling on both sides
//
// Start picks two free ports P (API server) and R (registry) on the host's
// loopback and keeps them bound there. Inside the node's network namespace
// (a fresh one: the same numbers are free) the API server listens on
// 0.0.0.0:P and the registry on 0.0.0.0:R. The host's listeners relay each
// connection to 127.0.0.1:P / :R inside the namespace, dialled from a
// thread switched into it (setns), so no forwarder process runs. Hence
// https://127.0.0.1:P (the kubeconfig) and 127.0.0.1:R/repo:tag (image
// references) name the same servers from a test on the host and from the
// node: what a test pushes is what containerd pulls, and preflight checks
// agree with the node. Pods reach the API server through the kubernetes
// Service (the API server advertises NodeIP).
//
// The node's address NodeIP (10.200.0.2) is one end of a veth pair (this
// kernel has no dummy links); the other end, DataServerIP (10.200.0.1),
// is in a network namespace of its own, the data server's, like a host
// beside the node: pods reach it routed through the node, so the policy
// agent (which sees forwarded traffic, never traffic to the node's own
// addresses) applies egress rules to it. Cluster.DataServer().Command
// returns a command entered into that namespace (nsenter --net) with the
// host's files and users, e.g. MariaDB listening on DataServerIP:3306.
// Cluster.Command enters the node's own network, whose servers hold
// 2379-2380 (etcd), the API server's and registry's P and R, 10249, 10250,
// 10256, 10257, 10259 and 10280-10282. MirrorRegistry lets the node pull
// from a registry only the calling process reaches (a Dagger engine's), under
// the same references. Cluster.DialContext dials any
// address of the namespace (a pod IP, a ClusterIP) from the host process.
//
// # Use
//
//	func TestMain(m *testing.M) { os.Exit(realnode.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := realnode.Shared(t) // one node per test package
//		client := kubernetes.NewForConfigOrDie(c.RESTConfig())
//		ref, err := c.PushBinaryImage(ctx, "team/app", "v1", "/path/to/static-binary")
//		...
//	}
//
// Start gives a node of one's own. Stop sends SIGTERM to the namespace's
// init (the inside stage stops the components in reverse order), kills the
// namespace after 15 s, waits until no process of its pid or network
// namespace remains, removes the node's cgroups (everything the kubelet
// and runc made under them) and the cluster directory. The mounts, links
// and nftables rules lived only in the namespaces and die with them;
// TestStopLeavesNothing compares the host before and after.
//
// # Programs
//
// The control plane comes from package binaries (built into
// $KRGEOBUK_CACHE/testenv). The node's programs (kubelet, kube-proxy,
// containerd, containerd-shim-runc-v2, CoreDNS, the patched
// kube-network-policies, pause) are binaries.Set fields, built by package
// binaries into the same cache (make testenv).
// Debian's runc, tini, util-linux (unshare, nsenter, setpriv), iproute2,
// nftables, conntrack, iptables (portmap) and containernetworking-plugins
// are checked before anything starts.
package realnode
