package realnode

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/satoken"
)

// ServiceAccountKubeconfig returns a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a token the API server issues for ttl,
// so the cluster's RBAC decides what it may do, as for a CI deployer; and the
// token, for redaction checks. The ServiceAccount must exist.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) ([]byte, string, error) {
	admin, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return nil, "", err
	}
	kc, token, err := satoken.Kubeconfig(ctx, admin, satoken.Cluster{Name: "realnode-" + c.name, Server: c.restConfig.Host, CAPEM: c.pki.PEM}, namespace, name, ttl)
	if err != nil {
		return nil, "", fmt.Errorf("realnode: %w", err)
	}
	return kc, token, nil
}
