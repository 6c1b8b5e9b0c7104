// Package attest signs images and attaches their SBOMs as OCI 1.1 referrers
// of the image's digest, in the formats cosign uses, then verifies and copies
// them. A signature is what `cosign sign --key` makes: the "simple signing"
// payload naming the repository and the manifest digest, signed over its
// exact bytes with the sigstore/sigstore library, the base64 signature in
// the layer annotation dev.cosignproject.cosign/signature. The SBOM is the
// CycloneDX document pipelines/sbom makes. Both are pushed, read and copied
// with go-containerregistry, through the registry's referrers API or, where
// a registry lacks it, the sha256-<hex> tag schema.
package attest

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Signer signs payloads with one private key. It never prints the key.
type Signer struct {
	sv  signature.SignerVerifier
	pub crypto.PublicKey
}

// NewSigner reads a PEM private key: PKCS#8 ("PRIVATE KEY", what
// `openssl genpkey` writes), SEC 1 ("EC PRIVATE KEY") or PKCS#1, or
// cosign's own encrypted key file ("ENCRYPTED SIGSTORE PRIVATE KEY" /
// "ENCRYPTED COSIGN PRIVATE KEY", from `cosign generate-key-pair`) with its
// password. The error says what was wrong with the key, never its bytes.
func NewSigner(pemKey, password []byte) (*Signer, error) {
	if len(pemKey) == 0 {
		return nil, errors.New("signing key: empty")
	}
	var pf cryptoutils.PassFunc
	if password != nil {
		pf = cryptoutils.StaticPasswordFunc(password)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemKey, pf)
	if err != nil {
		return nil, fmt.Errorf("signing key: not a usable PEM private key (PKCS#8, EC or RSA, or a cosign key file with its password): %s", keyError(err))
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key: %s", keyError(err))
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %s", keyError(err))
	}
	return &Signer{sv: sv, pub: pub}, nil
}

// PublicKey is the public half, PEM-encoded: what an environment accepts.
func (s *Signer) PublicKey() ([]byte, error) { return cryptoutils.MarshalPublicKeyToPEM(s.pub) }

// keyError keeps a library's description of a bad key short and free of
// anything but its words: none of them echo the key, and this makes sure.
func keyError(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// Key is one public key an environment accepts.
type Key struct {
	// Name says where it came from (a file name), for messages.
	Name     string
	verifier signature.Verifier
}

// ParseKey reads a PEM public key (SubjectPublicKeyInfo, what
// `openssl pkey -pubout` and `cosign generate-key-pair` write).
func ParseKey(name string, pemKey []byte) (Key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %w", name, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %w", name, err)
	}
	return Key{Name: name, verifier: v}, nil
}
