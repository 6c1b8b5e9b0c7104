package testenv

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountKubeconfig returns a kubeconfig that authenticates to the
// cluster as the ServiceAccount namespace/name, with a token the API
// server's TokenRequest API issues for ttl (what `kubectl create token`
// does): the cluster's RBAC decides what it may do, as it would for a CI
// deployer. The token is returned too, for redaction checks. The
// ServiceAccount must exist.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) ([]byte, string, error) {
	secs := int64(ttl / time.Second)
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("testenv: token for %s/%s: %w", namespace, name, err)
	}
	ctxName := fmt.Sprintf("testenv-%s-%s-%s", c.name, namespace, name)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{Server: c.restConfig.Host, CertificateAuthorityData: c.pki.PEM}
	cfg.AuthInfos[ctxName] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: ctxName, Namespace: namespace}
	cfg.CurrentContext = ctxName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, "", fmt.Errorf("testenv: kubeconfig for %s/%s: %w", namespace, name, err)
	}
	return data, tr.Status.Token, nil
}
