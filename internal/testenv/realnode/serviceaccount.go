package realnode

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountKubeconfig returns a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a token the API server issues for ttl
// (what `kubectl create token` does), so the cluster's RBAC decides what it
// may do, as for a CI deployer; and the token, for redaction checks. The
// ServiceAccount must exist. Same shape as testenv's.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) ([]byte, string, error) {
	client, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return nil, "", err
	}
	secs := int64(ttl / time.Second)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("realnode: token for %s/%s: %w", namespace, name, err)
	}
	ctxName := fmt.Sprintf("realnode-%s-%s-%s", c.name, namespace, name)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{Server: c.restConfig.Host, CertificateAuthorityData: c.pki.PEM}
	cfg.AuthInfos[ctxName] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: ctxName, Namespace: namespace}
	cfg.CurrentContext = ctxName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, "", fmt.Errorf("realnode: kubeconfig for %s/%s: %w", namespace, name, err)
	}
	return data, tr.Status.Token, nil
}
