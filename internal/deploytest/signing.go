package deploytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

// Key is a signing key pair made for one test: nothing is kept.
type Key struct {
	Signer *attest.Signer
	// PrivatePEM is what a publish receives as its --signing-key.
	PrivatePEM []byte
	// Public is the public half as an environment lists it.
	Public environment.PublicKey
}

// NewKey makes an ECDSA P-256 key pair (what `openssl genpkey -algorithm
// EC -pkeyopt ec_paramgen_curve:P-256` makes); file names its public half.
func NewKey(file string) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, err
	}
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return Key{}, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return Key{}, err
	}
	s, err := attest.NewSigner(privPEM, nil)
	if err != nil {
		return Key{}, err
	}
	return Key{Signer: s, PrivatePEM: privPEM, Public: environment.PublicKey{File: file, PEM: pubPEM}}, nil
}

// Requiring is a signing: block that requires signatures by these keys.
func Requiring(keys ...Key) *environment.Signing {
	s := &environment.Signing{Required: true}
	for _, k := range keys {
		s.Keys = append(s.Keys, k.Public)
	}
	return s
}

// Lockfile is a minimal npm lockfile for the tests' SBOMs.
const Lockfile = `{"name":"svc","lockfileVersion":3,"packages":{"":{"name":"svc"},"node_modules/ms":{"version":"2.1.3","integrity":"sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==","license":"MIT"}}}`

// Attest signs each image (service -> repository@digest) with key and
// attaches its SBOM, as a publish with --signing-key does.
func Attest(ctx context.Context, images map[string]string, key Key, opts ...remote.Option) error {
	for _, svc := range slices.Sorted(maps.Keys(images)) {
		d, err := name.NewDigest(images[svc])
		if err != nil {
			return err
		}
		bom, err := sbom.FromLockfile([]byte(Lockfile), sbom.Subject{Repository: d.Context().Name(), Digest: d.DigestStr()})
		if err != nil {
			return err
		}
		data, err := sbom.Encode(bom)
		if err != nil {
			return err
		}
		if _, err := attest.Attach(ctx, images[svc], key.Signer, data, opts...); err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
	}
	return nil
}
