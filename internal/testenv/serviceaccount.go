package testenv

import (
	"context"
	"fmt"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/satoken"
)

// ServiceAccountKubeconfig returns a kubeconfig that authenticates to the
// cluster as the ServiceAccount namespace/name, with a token the API
// server's TokenRequest API issues for ttl: the cluster's RBAC decides what
// it may do, as it would for a CI deployer. The token is returned too, for
// redaction checks. The ServiceAccount must exist.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) ([]byte, string, error) {
	kc, token, err := satoken.Kubeconfig(ctx, c.client, satoken.Cluster{Name: "testenv-" + c.name, Server: c.restConfig.Host, CAPEM: c.pki.PEM}, namespace, name, ttl)
	if err != nil {
		return nil, "", fmt.Errorf("testenv: %w", err)
	}
	return kc, token, nil
}
