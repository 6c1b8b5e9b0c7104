package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
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
	out, err := throughEndpoint([]byte(hostKubeconfig), "kube-api.abc.dagger.local:32766")
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
			_, err := throughEndpoint([]byte(tt.kubeconfig), tt.endpoint)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestParseImages(t *testing.T) {
	got, err := parseImages([]string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:ab", " auth-client = ghcr.io/krgeobuk/auth-client:1 "})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@sha256:ab", "auth-client": "ghcr.io/krgeobuk/auth-client:1"}, got)
	_, err = parseImages([]string{"auth-server=a", "auth-server=b"})
	require.ErrorContains(t, err, "service auth-server given twice")
	_, err = parseImages([]string{"=a"})
	require.ErrorContains(t, err, `--image "=a": want service=repository@sha256:...`)
}
