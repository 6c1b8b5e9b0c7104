package kube_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

const hostKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: kwok
  cluster: {server: "https://127.0.0.1:32766", certificate-authority-data: ""}
- name: other
  cluster: {server: "https://10.0.0.1:6443"}
users: [{name: u, user: {token: t}}]
contexts:
- {name: kwok, context: {cluster: kwok, user: u}}
- {name: other, context: {cluster: other, user: u}}
current-context: kwok
`

func TestThroughEndpoint(t *testing.T) {
	out, err := kube.ThroughEndpoint([]byte(hostKubeconfig), "kube-api.abc.dagger.local:32766")
	require.NoError(t, err)
	cfg, err := clientcmd.Load(out)
	require.NoError(t, err)
	kwok := cfg.Clusters["kwok"]
	require.Equal(t, "https://kube-api.abc.dagger.local:32766", kwok.Server, "reached through the service")
	require.Equal(t, "127.0.0.1", kwok.TLSServerName, "the certificate is still checked for the original host")
	require.Equal(t, "https://10.0.0.1:6443", cfg.Clusters["other"].Server, "other clusters untouched")

	tests := []struct {
		name, kubeconfig, endpoint, wantErr string
	}{
		{"endpoint without port", hostKubeconfig, "kube-api", `kube-api endpoint "kube-api"`},
		{"not a kubeconfig", "{", "a:1", "kubeconfig: does not parse"},
		{"no current context", "apiVersion: v1\nkind: Config\ncurrent-context: gone\n", "a:1", `current context "gone" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kube.ThroughEndpoint([]byte(tt.kubeconfig), tt.endpoint)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
