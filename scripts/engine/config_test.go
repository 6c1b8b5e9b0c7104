package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEngineConfigRegistries(t *testing.T) {
	b, err := engineConfig("/state/run/secure-registry/ca.pem")
	require.NoError(t, err)
	var cfg struct {
		Registries map[string]struct {
			Mirrors  []string `json:"mirrors"`
			HTTP     bool     `json:"http"`
			Insecure bool     `json:"insecure"`
			CA       []string `json:"ca"`
		} `json:"registries"`
	}
	require.NoError(t, json.Unmarshal(b, &cfg))
	for _, host := range []string{"127.0.0.1:5000", "10.87.0.1:5000"} {
		r, ok := cfg.Registries[host]
		require.True(t, ok, "registry %s missing", host)
		require.True(t, r.HTTP && r.Insecure, "registry %s must be plain HTTP and insecure", host)
	}
	require.Equal(t, []string{"127.0.0.1:5000"}, cfg.Registries["docker.io"].Mirrors)
	for _, host := range []string{"127.0.0.1:5443", "10.87.0.1:5443"} {
		r, ok := cfg.Registries[host]
		require.True(t, ok, "registry %s missing", host)
		require.False(t, r.HTTP || r.Insecure, "the authenticating registry %s is verified TLS", host)
		require.Equal(t, []string{"/state/run/secure-registry/ca.pem"}, r.CA, "registry %s trusts its CA", host)
	}
}

func TestLayoutManifestDigest(t *testing.T) {
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	tests := []struct {
		name, index, wantErr string
		blob                 bool
	}{
		{name: "one manifest", index: `{"manifests":[{"digest":"` + d + `"}]}`, blob: true},
		{name: "blob missing", index: `{"manifests":[{"digest":"` + d + `"}]}`, wantErr: "manifest blob"},
		{name: "two manifests", index: `{"manifests":[{"digest":"` + d + `"},{"digest":"` + d + `"}]}`, blob: true, wantErr: "want exactly one manifest, found 2"},
		{name: "not json", index: `{`, wantErr: "index.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(tt.index), 0o644))
			if tt.blob {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d[7:]), []byte("{}"), 0o644))
			}
			got, err := layoutManifestDigest(dir)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, d, got)
		})
	}
}
