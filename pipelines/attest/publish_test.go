package attest_test

import (
	"context"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
)

// What publish does after each push: the example API's real lockfile
// becomes the SBOM, the image (an index here, as a multi-platform publish
// makes) is signed, and the result verifies as a deploy checks it.
func TestPublishedAttachesWhatDeployVerifies(t *testing.T) {
	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			r := reg.start(t)
			signer, key, _ := keyPair(t, "cosign.pub")
			image := pushImage(t, r, "auth-server", "abc123", true)
			lock, err := os.ReadFile("../../examples/auth-api/package-lock.json")
			require.NoError(t, err)
			// go-containerregistry's registry ignores credentials, the
			// distribution registry checks them: passed as publish passes them.
			opts := r.opts
			if opts == nil {
				opts = []remote.Option{remote.WithAuth(&authn.Basic{Username: "ci-bot", Password: "registry-token"})}
			}
			_, err = attest.Published(context.Background(), "auth-server", image, lock, signer, opts...)
			require.NoError(t, err)
			got, err := (&attest.Verifier{Keys: []attest.Key{key}, Options: r.opts}).Verify(context.Background(), image)
			require.NoError(t, err)
			require.Equal(t, "cosign.pub", got.Key)

			_, err = attest.Published(context.Background(), "auth-server", image, nil, signer)
			require.EqualError(t, err, "service auth-server: its source has no package-lock.json at its root: the SBOM lists the npm packages it installs from it")
			_, err = attest.Published(context.Background(), "auth-server", image, []byte(`{"name":"x","dependencies":{}}`), signer)
			require.ErrorContains(t, err, "service auth-server: sbom: package-lock.json has no lockfileVersion")
		})
	}
}

// Publishing for staging or production without a signing key is refused;
// development needs none.
func TestCheckPublish(t *testing.T) {
	for name, wantErr := range map[string]string{
		"development": "",
		"staging":     "environment staging requires signed images: give --signing-key (a PEM private key as a secret, e.g. env:COSIGN_KEY)",
		"production":  "environment production requires signed images: give --signing-key",
	} {
		env, err := environment.Load(k8s.Environments, name)
		require.NoError(t, err)
		err = attest.CheckPublish(env, false)
		if wantErr == "" {
			require.NoError(t, err, name)
		} else {
			require.ErrorContains(t, err, wantErr, name)
		}
		require.NoError(t, attest.CheckPublish(env, true), name)
	}
}
