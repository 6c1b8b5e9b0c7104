package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

// The formats, as cosign and the OCI 1.1 image spec name them.
const (
	// SignatureArtifactType is the artifactType of a signature referrer.
	SignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// SimpleSigningMediaType is the media type of the signed payload's layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of the layer's bytes.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// SBOMArtifactType is the artifactType of an SBOM referrer.
	SBOMArtifactType = sbom.MediaType
	// emptyMediaType is the OCI 1.1 empty config of an artifact manifest.
	emptyMediaType = "application/vnd.oci.empty.v1+json"
)

// emptyConfig is the OCI 1.1 empty JSON object every artifact's config
// points at.
var emptyConfig = []byte("{}")

// Attached is what Attach pushed: the two referrer manifests' digests.
type Attached struct {
	Signature, SBOM string
}

// Attach signs image (repository@digest of an image or an index) with
// signer and pushes the signature and sbomJSON as two OCI referrers whose
// subject is the image's descriptor as the registry serves it. opts carry
// the registry's credentials and transport.
func Attach(ctx context.Context, image string, signer *Signer, sbomJSON []byte, opts ...remote.Option) (Attached, error) {
	ref, err := name.NewDigest(image)
	if err != nil {
		return Attached{}, fmt.Errorf("attest: %q is not an image pinned by digest: %w", image, err)
	}
	if signer == nil {
		return Attached{}, fmt.Errorf("attest %s: no signing key", image)
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	subject, err := remote.Head(ref, opts...)
	if err != nil {
		return Attached{}, fmt.Errorf("attest %s: read the image's descriptor: %w", image, err)
	}
	if subject.Digest.String() != ref.DigestStr() {
		return Attached{}, fmt.Errorf("attest %s: the registry serves digest %s", image, subject.Digest)
	}
	pl, err := Payload(ref)
	if err != nil {
		return Attached{}, fmt.Errorf("attest %s: %w", image, err)
	}
	sig, err := signer.sv.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return Attached{}, fmt.Errorf("attest %s: sign: %w", image, err)
	}
	var out Attached
	out.Signature, err = push(ref.Context(), *subject, SignatureArtifactType, SimpleSigningMediaType, pl,
		map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}, opts)
	if err != nil {
		return out, fmt.Errorf("attest %s: push the signature: %w", image, err)
	}
	if out.SBOM, err = push(ref.Context(), *subject, SBOMArtifactType, SBOMArtifactType, sbomJSON, nil, opts); err != nil {
		return out, fmt.Errorf("attest %s: push the SBOM: %w", image, err)
	}
	return out, nil
}

// Payload is the cosign simple-signing payload for image: its repository
// as the claimed identity, its manifest digest, the cosign signature type.
func Payload(image name.Digest) ([]byte, error) {
	return payload.Cosign{Image: image}.MarshalJSON()
}

// push uploads one artifact: an empty config, one layer with data, and a
// manifest naming subject, pushed by its own digest. ggcr's remote.Put
// updates the sha256-<hex> tag itself when the registry has no referrers
// API.
func push(repo name.Repository, subject v1.Descriptor, artifactType, layerType string, data []byte, annotations map[string]string, opts []remote.Option) (string, error) {
	layer := static.NewLayer(data, types.MediaType(layerType))
	config := static.NewLayer(emptyConfig, emptyMediaType)
	var descs []v1.Descriptor
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return "", err
		}
		d, err := l.Digest()
		if err != nil {
			return "", err
		}
		sz, err := l.Size()
		if err != nil {
			return "", err
		}
		mt, err := l.MediaType()
		if err != nil {
			return "", err
		}
		descs = append(descs, v1.Descriptor{MediaType: mt, Digest: d, Size: sz})
	}
	descs[0].Data = emptyConfig
	descs[1].Annotations = annotations
	subject = v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := manifest{v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
		Config: descs[0], Layers: descs[1:], Subject: &subject,
	}}
	raw, err := m.RawManifest()
	if err != nil {
		return "", err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	if err := remote.Put(repo.Digest(h.String()), m, opts...); err != nil {
		return "", err
	}
	return h.String(), nil
}

// manifest is an artifact manifest as remote.Put takes it.
type manifest struct{ v1.Manifest }

func (m manifest) RawManifest() ([]byte, error) { return json.Marshal(m.Manifest) }

func (m manifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
