package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testKey is a PEM private key made for one test.
func testKey(t *testing.T) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// Publishing for an environment that requires signatures without a key, or
// with a key that is not one, is refused before anything is built, and the
// key never appears in the error.
func TestPublishRefusesWithoutAUsableSigningKey(t *testing.T) {
	ctx := context.Background()
	d := dag.Directory().WithNewFile("package.json", `{"name":"authz-server"}`)
	key := testKey(t)
	body := strings.Split(key, "\n")[1]
	broken := strings.Replace(key, body, body[:12]+"AAAA"+body[16:], 1)
	for _, tc := range []struct {
		name string
		key  string
		want string
	}{
		{"no key for production", "", "publish: environment production requires signed images: give --signing-key"},
		{"not a key", "hunter2-not-a-key", "publish: signing key: not a usable PEM private key"},
		{"a corrupt key", broken, "publish: signing key: not a usable PEM private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recordFrom(t)
			m := module()
			secret := dag.SetSecret("cosign-key", tc.key)
			if tc.key == "" {
				secret = nil
			}
			_, err := m.Publish(ctx, "127.0.0.1:5000/krgeobuk", "v1", []string{"authz-server"}, nil, d, nil, nil, nil, nil, nil,
				"", nil, nil, nil, "production", "", "", "", "", secret, nil)
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, publishQueries(), "nothing was built or pushed")
			if tc.key != "" {
				require.NotContains(t, err.Error(), body[:20])
				require.NotContains(t, err.Error(), "hunter2")
			}
		})
	}
}

// With a key, each pushed digest is attested right after its push, with
// publish's own registry credentials. The fake session pushes nothing, so
// the registry (a real go-containerregistry one) answers that the digest is
// unknown: the attempt, its address and its credentials are what this
// proves; the end-to-end suite runs it on a real engine.
func TestPublishAttestsEachPushedDigestWithItsCredentials(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	const token = "ghp-signing-contract-token-41d2"
	host, logins := loginRegistry(t, "ci-bot", token)
	key := testKey(t)
	d := dag.Directory().WithNewFile("package.json", `{"name":"authz-server"}`).
		WithNewFile("package-lock.json", `{"lockfileVersion":3,"packages":{"":{"name":"authz-server"}}}`)
	refs, err := module().Publish(ctx, host+"/krgeobuk", "v1", []string{"authz-server"}, nil, d, nil, nil, nil, nil, nil,
		"ci-bot", dag.SetSecret("registry-password", token), nil, nil, "production", "", "", "", "", dag.SetSecret("cosign-key", key), nil)
	require.Nil(t, refs)
	pushed := publishQueries()
	require.Len(t, pushed, 1, "the image was pushed first")
	require.ErrorContains(t, err, "publish: service authz-server: attest "+host+"/krgeobuk/authz-server@sha256:")
	require.ErrorContains(t, err, "read the image's descriptor")
	seen := logins()
	require.NotEmpty(t, seen)
	require.Regexp(t, `^HEAD /v2/krgeobuk/authz-server/manifests/sha256:[0-9a-f]{64} ci-bot:`+token+`$`, seen[len(seen)-1], "the pushed digest, with publish's credentials")
	require.NotContains(t, err.Error(), token)
	require.NotContains(t, err.Error(), strings.Split(key, "\n")[1][:20])
	requireNoPlaintextOutsideSetSecret(t, []string{token, key})
}
