package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

// testRegistry is a running registry and the options that reach it.
type testRegistry struct {
	host string
	opts []remote.Option
}

// registries are the two ways a registry keeps referrers: its referrers
// API, or (without it) the sha256-<hex> tag go-containerregistry maintains,
// on go-containerregistry's registry; and the CNCF distribution registry
// (v3.1.2: no referrers API) over TLS with htpasswd, as teams run it.
var registries = []struct {
	name  string
	start func(t *testing.T) testRegistry
}{
	{"referrers API", func(t *testing.T) testRegistry { return newRegistry(t, true) }},
	{"tag schema", func(t *testing.T) testRegistry { return newRegistry(t, false) }},
	{"distribution", func(t *testing.T) testRegistry {
		r := registrytest.Start(t)
		return testRegistry{host: r.Host, opts: r.Options(context.Background())}
	}},
}

func newRegistry(t *testing.T, referrers bool) testRegistry {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrers)))
	t.Cleanup(srv.Close)
	return testRegistry{host: strings.TrimPrefix(srv.URL, "http://")}
}

// keyPair makes a fresh ECDSA P-256 key pair, as `openssl genpkey
// -algorithm EC -pkeyopt ec_paramgen_curve:P-256` would: tests never keep keys.
func keyPair(t *testing.T, name string) (*attest.Signer, attest.Key, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	require.NoError(t, err)
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	require.NoError(t, err)
	s, err := attest.NewSigner(privPEM, nil)
	require.NoError(t, err)
	k, err := attest.ParseKey(name, pubPEM)
	require.NoError(t, err)
	return s, k, privPEM
}

// pushImage pushes a random image (or, index true, a two-platform index)
// as repo:tag and returns repo@digest.
func pushImage(t *testing.T, r testRegistry, repo, tag string, index bool) string {
	t.Helper()
	ref, err := name.NewTag(r.host + "/krgeobuk/" + repo + ":" + tag)
	require.NoError(t, err)
	if index {
		idx, err := random.Index(512, 1, 2)
		require.NoError(t, err)
		require.NoError(t, remote.WriteIndex(ref, idx, r.opts...))
		d, err := idx.Digest()
		require.NoError(t, err)
		return ref.Context().Name() + "@" + d.String()
	}
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, r.opts...))
	d, err := img.Digest()
	require.NoError(t, err)
	return ref.Context().Name() + "@" + d.String()
}

func sbomFor(t *testing.T, image string) []byte {
	t.Helper()
	d, err := name.NewDigest(image)
	require.NoError(t, err)
	bom, err := sbom.FromLockfile([]byte(`{"lockfileVersion":3,"packages":{"":{"name":"x"},"node_modules/a":{"version":"1.0.0","integrity":"sha512-AAAA"}}}`),
		sbom.Subject{Repository: d.Context().Name(), Digest: d.DigestStr()})
	require.NoError(t, err)
	data, err := sbom.Encode(bom)
	require.NoError(t, err)
	return data
}

func attach(t *testing.T, r testRegistry, image string, s *attest.Signer) {
	t.Helper()
	_, err := attest.Attach(context.Background(), image, s, sbomFor(t, image), r.opts...)
	require.NoError(t, err)
}

func descriptor(t *testing.T, r testRegistry, image string) v1.Descriptor {
	t.Helper()
	d, err := name.NewDigest(image)
	require.NoError(t, err)
	desc, err := remote.Head(d, r.opts...)
	require.NoError(t, err)
	return *desc
}

// The signature is what cosign makes: the simple-signing payload naming
// the repository and the digest, in a layer of its media type, its
// signature in the cosign annotation, in a manifest whose subject is the
// image; the SBOM is a CycloneDX referrer. Both are listed as referrers of
// the digest, whichever way the registry keeps them.
func TestAttachWritesCosignReferrers(t *testing.T) {
	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			r := reg.start(t)
			signer, _, _ := keyPair(t, "cosign.pub")
			image := pushImage(t, r, "auth-server", "1", false)
			got, err := attest.Attach(context.Background(), image, signer, sbomFor(t, image), r.opts...)
			require.NoError(t, err)

			d, err := name.NewDigest(image)
			require.NoError(t, err)
			idx, err := remote.Referrers(d, r.opts...)
			require.NoError(t, err)
			im, err := idx.IndexManifest()
			require.NoError(t, err)
			listed := map[string]bool{}
			for _, m := range im.Manifests {
				listed[m.Digest.String()] = true
			}
			require.True(t, listed[got.Signature] && listed[got.SBOM], "both referrers are listed: %v", listed)

			sig, err := remote.Get(d.Context().Digest(got.Signature), r.opts...)
			require.NoError(t, err)
			m, err := v1.ParseManifest(strings.NewReader(string(sig.Manifest)))
			require.NoError(t, err)
			require.Equal(t, attest.SignatureArtifactType, m.ArtifactType)
			require.Equal(t, d.DigestStr(), m.Subject.Digest.String())
			require.Equal(t, "application/vnd.oci.empty.v1+json", string(m.Config.MediaType))
			require.Len(t, m.Layers, 1)
			require.Equal(t, attest.SimpleSigningMediaType, string(m.Layers[0].MediaType))
			_, err = base64.StdEncoding.DecodeString(m.Layers[0].Annotations[attest.SignatureAnnotation])
			require.NoError(t, err)
			l, err := remote.Layer(d.Context().Digest(m.Layers[0].Digest.String()), r.opts...)
			require.NoError(t, err)
			rc, err := l.Compressed()
			require.NoError(t, err)
			pl, err := io.ReadAll(rc)
			require.NoError(t, err)
			var p map[string]any
			require.NoError(t, json.Unmarshal(pl, &p))
			critical := p["critical"].(map[string]any)
			require.Equal(t, "cosign container image signature", critical["type"])
			require.Equal(t, d.DigestStr(), critical["image"].(map[string]any)["docker-manifest-digest"])
			require.Equal(t, d.Context().Name(), critical["identity"].(map[string]any)["docker-reference"])

			bom, err := remote.Get(d.Context().Digest(got.SBOM), r.opts...)
			require.NoError(t, err)
			m, err = v1.ParseManifest(strings.NewReader(string(bom.Manifest)))
			require.NoError(t, err)
			require.Equal(t, sbom.MediaType, m.ArtifactType)
			require.Equal(t, sbom.MediaType, string(m.Layers[0].MediaType))
		})
	}
}

// Verify passes a properly signed image (and a signed index), and refuses,
// each with its reason: an unsigned image, one signed by another key, a
// tampered signature, a signature copied from another image, an image
// re-tagged to another digest, a missing SBOM.
func TestVerify(t *testing.T) {
	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			r := reg.start(t)
			signer, key, _ := keyPair(t, "cosign.pub")
			other, _, _ := keyPair(t, "other.pub")
			v := &attest.Verifier{Keys: []attest.Key{key}, Options: r.opts}

			for _, tc := range []struct {
				name string
				// image prepares the image to verify and returns it.
				image func(t *testing.T) string
				want  string // empty: passes
			}{
				{"signed image", func(t *testing.T) string {
					img := pushImage(t, r, "auth-server", "signed", false)
					attach(t, r, img, signer)
					return img
				}, ""},
				{"signed multi-platform index", func(t *testing.T) string {
					img := pushImage(t, r, "auth-client", "index", true)
					attach(t, r, img, signer)
					return img
				}, ""},
				{"unsigned", func(t *testing.T) string {
					return pushImage(t, r, "authz-server", "unsigned", false)
				}, "not signed: no signature referrer"},
				{"signed by another key", func(t *testing.T) string {
					img := pushImage(t, r, "authz-server", "other", false)
					attach(t, r, img, other)
					return img
				}, "verifies with no accepted key (signed with another key, or altered)"},
				{"tampered signature", func(t *testing.T) string {
					img := pushImage(t, r, "authz-server", "tampered", false)
					pl, sig := signedPayload(t, signer, img)
					sig[len(sig)/2] ^= 0xff
					forge(t, r, img, pl, sig)
					return img
				}, "verifies with no accepted key"},
				{"tampered payload", func(t *testing.T) string {
					img := pushImage(t, r, "authz-server", "payload", false)
					pl, sig := signedPayload(t, signer, img)
					forge(t, r, img, []byte(strings.Replace(string(pl), "cosign container", "cosign  container", 1)), sig)
					return img
				}, "verifies with no accepted key"},
				{"signature copied from another image", func(t *testing.T) string {
					signed := pushImage(t, r, "portal-client", "a", false)
					pl, sig := signedPayload(t, signer, signed)
					img := pushImage(t, r, "portal-client", "b", false)
					forge(t, r, img, pl, sig)
					return img
				}, "signed with key cosign.pub for digest " + "sha256:"},
				{"re-tagged to another digest", func(t *testing.T) string {
					first := pushImage(t, r, "portal-client", "v1", false)
					attach(t, r, first, signer)
					pushImage(t, r, "portal-client", "v1", false) // v1 now names an unsigned digest
					tag, err := name.NewTag(r.host + "/krgeobuk/portal-client:v1")
					require.NoError(t, err)
					desc, err := remote.Head(tag, r.opts...)
					require.NoError(t, err)
					require.NotEqual(t, first, tag.Context().Name()+"@"+desc.Digest.String())
					return tag.Context().Name() + "@" + desc.Digest.String()
				}, "not signed"},
				{"no SBOM", func(t *testing.T) string {
					img := pushImage(t, r, "auth-server", "nosbom", false)
					pl, sig := signedPayload(t, signer, img)
					forge(t, r, img, pl, sig)
					return img
				}, "signed, but no SBOM referrer (application/vnd.cyclonedx+json)"},
				{"SBOM of another image", func(t *testing.T) string {
					img := pushImage(t, r, "auth-server", "wrongsbom", false)
					pl, sig := signedPayload(t, signer, img)
					forge(t, r, img, pl, sig)
					other := pushImage(t, r, "auth-server", "elsewhere", false)
					d, err := name.NewDigest(img)
					require.NoError(t, err)
					_, err = attest.PushArtifact(d.Context(), descriptor(t, r, img), attest.SBOMArtifactType, attest.SBOMArtifactType, sbomFor(t, other), nil, r.opts...)
					require.NoError(t, err)
					return img
				}, "not this digest"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					img := tc.image(t)
					got, err := v.Verify(context.Background(), img)
					if tc.want == "" {
						require.NoError(t, err)
						require.Equal(t, "cosign.pub", got.Key)
						require.NotEmpty(t, got.SBOM)
						return
					}
					var refusal *attest.Refusal
					require.ErrorAs(t, err, &refusal)
					require.Equal(t, img, refusal.Image, "the refusal names the digest")
					require.ErrorContains(t, err, tc.want)
				})
			}
		})
	}
}

// signedPayload is image's cosign payload and signer's signature over it,
// for a test to alter or push elsewhere.
func signedPayload(t *testing.T, signer *attest.Signer, image string) (payload, sig []byte) {
	t.Helper()
	d, err := name.NewDigest(image)
	require.NoError(t, err)
	payload, err = attest.Payload(d)
	require.NoError(t, err)
	sig, err = signer.Sign(payload)
	require.NoError(t, err)
	return payload, sig
}

// forge pushes a signature referrer with the given payload and signature.
func forge(t *testing.T, r testRegistry, image string, payload, sig []byte) {
	t.Helper()
	d, err := name.NewDigest(image)
	require.NoError(t, err)
	_, err = attest.PushArtifact(d.Context(), descriptor(t, r, image), attest.SignatureArtifactType, attest.SimpleSigningMediaType, payload,
		map[string]string{attest.SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}, r.opts...)
	require.NoError(t, err)
}

// Key rotation: while both keys are accepted an image signed with either
// passes; once the old key is removed, images signed only with it are
// refused.
func TestVerifyRotation(t *testing.T) {
	r := newRegistry(t, true)
	oldSigner, oldKey, _ := keyPair(t, "cosign.pub")
	newSigner, newKey, _ := keyPair(t, "cosign-next.pub")
	byOld := pushImage(t, r, "auth-server", "old", false)
	attach(t, r, byOld, oldSigner)
	byNew := pushImage(t, r, "auth-server", "new", false)
	attach(t, r, byNew, newSigner)

	both := &attest.Verifier{Keys: []attest.Key{oldKey, newKey}}
	got, err := both.Verify(context.Background(), byOld)
	require.NoError(t, err)
	require.Equal(t, "cosign.pub", got.Key)
	got, err = both.Verify(context.Background(), byNew)
	require.NoError(t, err)
	require.Equal(t, "cosign-next.pub", got.Key)

	onlyNew := &attest.Verifier{Keys: []attest.Key{newKey}}
	_, err = onlyNew.Verify(context.Background(), byOld)
	require.ErrorContains(t, err, "verifies with no accepted key")
}

// Copy carries the signature and SBOM with the digest to another
// registry (with or without a referrers API), and the copied signature
// verifies there.
func TestCopyReferrersVerifyAtTheTarget(t *testing.T) {
	for _, from := range registries {
		for _, to := range registries {
			t.Run(from.name+" to "+to.name, func(t *testing.T) {
				src, dst := from.start(t), to.start(t)
				signer, key, _ := keyPair(t, "cosign.pub")
				image := pushImage(t, src, "auth-server", "1", false)
				attach(t, src, image, signer)
				d, _ := name.NewDigest(image)
				target := dst.host + "/prod/auth-server@" + d.DigestStr()
				v := &attest.Verifier{Keys: []attest.Key{key}, Options: dst.opts}

				// The image itself, as promotion copies it.
				img, err := remote.Image(d, src.opts...)
				require.NoError(t, err)
				td, err := name.NewDigest(target)
				require.NoError(t, err)
				require.NoError(t, remote.Write(td, img, dst.opts...))
				_, err = v.Verify(context.Background(), target)
				require.ErrorContains(t, err, "not signed", "before the copy the target has no signature")

				n, err := attest.Copy(context.Background(), image, target, src.opts, dst.opts)
				require.NoError(t, err)
				require.Equal(t, 2, n)
				got, err := v.Verify(context.Background(), target)
				require.NoError(t, err)
				require.Equal(t, "cosign.pub", got.Key)

				n, err = attest.Copy(context.Background(), image, target, src.opts, dst.opts)
				require.NoError(t, err, "copying again is harmless")
				require.Equal(t, 2, n)
			})
		}
	}
}

// A signing key, good or bad, never appears in an error; cosign's own
// encrypted key files load with their password.
func TestSigningKeyNeverInErrors(t *testing.T) {
	_, _, privPEM := keyPair(t, "k")
	body := strings.Split(string(privPEM), "\n")[1]
	broken := strings.Replace(string(privPEM), body, body[:10]+"AAAA"+body[14:], 1)
	for _, tc := range []struct {
		name string
		key  []byte
		want string
	}{
		{"empty", nil, "signing key: empty"},
		{"not PEM", []byte(body), "PEM decoding failed"},
		{"corrupt key", []byte(broken), "not a usable PEM private key"},
		{"a public key", []byte(strings.ReplaceAll(string(privPEM), "PRIVATE", "PUBLIC")), "unknown private key PEM file type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := attest.NewSigner(tc.key, nil)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), body[:16])
			require.NotContains(t, err.Error(), body[20:40])
		})
	}

	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("s3cret-pass")))
	require.NoError(t, err)
	require.Contains(t, string(priv), "ENCRYPTED SIGSTORE PRIVATE KEY")
	_, err = attest.NewSigner(priv, []byte("wrong"))
	require.ErrorContains(t, err, "not a usable PEM private key")
	require.NotContains(t, err.Error(), "s3cret-pass")
	s, err := attest.NewSigner(priv, []byte("s3cret-pass"))
	require.NoError(t, err)
	got, err := s.PublicKey()
	require.NoError(t, err)
	require.Equal(t, string(pub), string(got))
}
