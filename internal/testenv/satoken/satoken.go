// Package satoken writes the kubeconfig a CI deployer would hold: a
// ServiceAccount's token from the TokenRequest API, so the test cluster's
// RBAC decides what the holder may do. Both test clusters (kwok and the real
// node) hand these out.
package satoken

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

// Cluster is where the kubeconfig points: the API server's URL and the CA
// that signed its serving certificate, and a name for the kubeconfig's
// context.
type Cluster struct {
	Name   string
	Server string
	CAPEM  []byte
}

// Kubeconfig returns a kubeconfig that authenticates to c as the
// ServiceAccount namespace/name with a token issued for ttl (what `kubectl
// create token` does), and the token, for redaction checks. The
// ServiceAccount must exist; admin is any client allowed to request tokens.
func Kubeconfig(ctx context.Context, admin kubernetes.Interface, c Cluster, namespace, name string, ttl time.Duration) ([]byte, string, error) {
	secs := int64(ttl / time.Second)
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("token for %s/%s: %w", namespace, name, err)
	}
	ctxName := fmt.Sprintf("%s-%s-%s", c.Name, namespace, name)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAPEM}
	cfg.AuthInfos[ctxName] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: ctxName, Namespace: namespace}
	cfg.CurrentContext = ctxName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig for %s/%s: %w", namespace, name, err)
	}
	return data, tr.Status.Token, nil
}
