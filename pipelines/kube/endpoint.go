package kube

import (
	"fmt"
	"net"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
)

// ThroughEndpoint rewrites a kubeconfig so its current cluster is reached at
// endpoint (host:port of a tunnel to the real API server, such as a Dagger
// service), while TLS still verifies the certificate against the original
// host name. A cluster on a CI engine's host (kind, kwok, k3d: 127.0.0.1:6443)
// is otherwise unreachable from inside the engine.
func ThroughEndpoint(kubeconfig []byte, endpoint string) ([]byte, error) {
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return nil, fmt.Errorf("kube-api endpoint %q: %w", endpoint, err)
	}
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: does not parse: %w", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("kubeconfig: current context %q not found", cfg.CurrentContext)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("kubeconfig: cluster %q of context %q not found", ctx.Cluster, cfg.CurrentContext)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kubeconfig: cluster %q: server %q is not a URL", ctx.Cluster, cluster.Server)
	}
	if cluster.TLSServerName == "" && !cluster.InsecureSkipTLSVerify {
		cluster.TLSServerName = u.Hostname()
	}
	u.Host = endpoint
	cluster.Server = u.String()
	return clientcmd.Write(*cfg)
}
