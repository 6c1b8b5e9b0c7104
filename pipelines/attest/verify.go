package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	retry "github.com/sethvargo/go-retry"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

// maxBlob bounds what is read of a payload or an SBOM: a referrer is
// anyone's upload, and the check must not read a registry's worth.
const maxBlob = 16 << 20

// Refusal says why an image does not verify; Image is repository@digest.
type Refusal struct {
	Image  string
	Reason string
}

func (r *Refusal) Error() string { return fmt.Sprintf("image %s: %s", r.Image, r.Reason) }

// Verified is what made an image pass: the key that verified its
// signature, and the referrers read.
type Verified struct {
	Key       string `json:"key"`
	Signature string `json:"signature"`
	SBOM      string `json:"sbom"`
}

// Verifier checks images against the keys an environment accepts.
type Verifier struct {
	Keys []Key
	// Options are passed to every registry request (credentials, transport).
	Options []remote.Option
	// NewBudget returns a fresh retry budget per image for transient
	// registry failures; nil means the default registry budget.
	NewBudget func() retry.Backoff
}

// Verify passes image (repository@digest) when one of its referrers is a
// cosign signature that verifies with an accepted key over a payload naming
// exactly this digest, and another is a CycloneDX SBOM whose subject is
// this digest. Anything else is a *Refusal saying why: not signed, signed
// by no accepted key (another key, or altered), signed for another digest,
// no SBOM. The listing is not trusted: every referrer's own manifest is
// read for its type and subject.
func (v *Verifier) Verify(ctx context.Context, image string) (Verified, error) {
	ref, err := name.NewDigest(image)
	if err != nil {
		return Verified{}, &Refusal{Image: image, Reason: "not pinned by digest: signatures are checked for a digest only"}
	}
	if len(v.Keys) == 0 {
		return Verified{}, fmt.Errorf("image %s: no accepted public key to verify with", image)
	}
	newBudget := v.NewBudget
	if newBudget == nil {
		newBudget = func() retry.Backoff { return budget.Registry(budget.Defaults().Registry) }
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithRetryPredicate(func(error) bool { return false })}, v.Options...)
	var out Verified
	err = retry.Do(ctx, newBudget(), func(ctx context.Context) error {
		var err error
		out, err = v.check(ref, opts)
		var refusal *Refusal
		if err != nil && !errors.As(err, &refusal) && registry.Transient(err) {
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil {
		var refusal *Refusal
		if errors.As(err, &refusal) {
			return out, refusal
		}
		return out, fmt.Errorf("image %s: read its referrers: %w", image, err)
	}
	return out, nil
}

func (v *Verifier) check(ref name.Digest, opts []remote.Option) (Verified, error) {
	refs, err := referrers(ref, opts)
	if err != nil {
		return Verified{}, err
	}
	var out Verified
	var reasons []string
	signatures := 0
	for _, r := range refs {
		if r.artifactType != SignatureArtifactType {
			continue
		}
		signatures++
		key, reason, err := v.signature(ref, r, opts)
		if err != nil {
			return out, err
		}
		if reason != "" {
			reasons = append(reasons, fmt.Sprintf("signature %s: %s", short(r.digest), reason))
			continue
		}
		out.Key, out.Signature = key, r.digest
		break
	}
	image := ref.Context().Name() + "@" + ref.DigestStr()
	switch {
	case signatures == 0:
		return out, &Refusal{Image: image, Reason: "not signed: no signature referrer (" + SignatureArtifactType + ")"}
	case out.Signature == "":
		return out, &Refusal{Image: image, Reason: strings.Join(reasons, "; ")}
	}
	reasons = nil
	for _, r := range refs {
		if r.artifactType != SBOMArtifactType {
			continue
		}
		reason, err := sbomOf(ref, r, opts)
		if err != nil {
			return out, err
		}
		if reason == "" {
			out.SBOM = r.digest
			return out, nil
		}
		reasons = append(reasons, fmt.Sprintf("SBOM %s: %s", short(r.digest), reason))
	}
	if len(reasons) == 0 {
		return out, &Refusal{Image: image, Reason: "signed, but no SBOM referrer (" + SBOMArtifactType + ")"}
	}
	return out, &Refusal{Image: image, Reason: "signed, but " + strings.Join(reasons, "; ")}
}

// signature checks one signature referrer: a reason when it does not pass.
func (v *Verifier) signature(ref name.Digest, r referrer, opts []remote.Option) (key, reason string, err error) {
	var layer *v1.Descriptor
	for i, l := range r.manifest.Layers {
		if l.MediaType == SimpleSigningMediaType {
			layer = &r.manifest.Layers[i]
			break
		}
	}
	if layer == nil {
		return "", "holds no " + SimpleSigningMediaType + " layer", nil
	}
	sig, err := base64.StdEncoding.DecodeString(layer.Annotations[SignatureAnnotation])
	if err != nil || len(sig) == 0 {
		return "", "its " + SignatureAnnotation + " annotation is not a base64 signature", nil
	}
	pl, err := blob(ref.Context(), *layer, opts)
	if err != nil {
		return "", "", err
	}
	for _, k := range v.Keys {
		if k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pl)) == nil {
			key = k.Name
			break
		}
	}
	if key == "" {
		return "", "verifies with no accepted key (signed with another key, or altered)", nil
	}
	var p payload.Cosign
	if err := json.Unmarshal(pl, &p); err != nil {
		return "", fmt.Sprintf("signed with key %s, but its payload is not a cosign signature: %v", key, err), nil
	}
	if signed := p.Image.DigestStr(); signed != ref.DigestStr() {
		return "", fmt.Sprintf("signed with key %s for digest %s, not this one: a signature copied from another image", key, signed), nil
	}
	return key, "", nil
}

func sbomOf(ref name.Digest, r referrer, opts []remote.Option) (string, error) {
	for _, l := range r.manifest.Layers {
		if string(l.MediaType) != sbom.MediaType {
			continue
		}
		data, err := blob(ref.Context(), l, opts)
		if err != nil {
			return "", err
		}
		bom, err := sbom.Decode(data)
		if err != nil {
			return err.Error(), nil
		}
		s, ok := sbom.SubjectOf(bom)
		if !ok || s.Digest != ref.DigestStr() {
			return fmt.Sprintf("describes %s@%s, not this digest", s.Repository, s.Digest), nil
		}
		return "", nil
	}
	return "holds no " + sbom.MediaType + " layer", nil
}

// referrer is one manifest whose subject is the image, as read from the
// manifest itself.
type referrer struct {
	digest       string
	artifactType string
	manifest     *v1.Manifest
	raw          *remote.Descriptor
}

// referrers lists the image's referrers and reads each manifest: its own
// subject must be this digest (a sha256-<hex> tag can list anything) and
// its artifactType decides what it is (registries differ in what their
// listing says: go-containerregistry's reports the config's media type).
func referrers(ref name.Digest, opts []remote.Option) ([]referrer, error) {
	idx, err := remote.Referrers(ref, opts...)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []referrer
	for _, d := range im.Manifests {
		desc, err := remote.Get(ref.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("referrer %s: %w", d.Digest, err)
		}
		if !desc.MediaType.IsImage() {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return nil, fmt.Errorf("referrer %s: %w", d.Digest, err)
		}
		if m.Subject == nil || m.Subject.Digest.String() != ref.DigestStr() {
			continue
		}
		at := m.ArtifactType
		if at == "" {
			at = string(m.Config.MediaType)
		}
		out = append(out, referrer{digest: d.Digest.String(), artifactType: at, manifest: m, raw: desc})
	}
	return out, nil
}

// blob reads one layer, its digest checked by go-containerregistry as it
// is read.
func blob(repo name.Repository, d v1.Descriptor, opts []remote.Option) ([]byte, error) {
	if d.Size > maxBlob {
		return nil, fmt.Errorf("layer %s is %d bytes, more than %d", d.Digest, d.Size, maxBlob)
	}
	l, err := remote.Layer(repo.Digest(d.Digest.String()), opts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxBlob+1))
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// Keys are the public keys signing names, parsed.
func Keys(signing *environment.Signing) ([]Key, error) {
	if signing == nil {
		return nil, nil
	}
	var out []Key
	for _, k := range signing.Keys {
		key, err := ParseKey(k.File, k.PEM)
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	return out, nil
}

// VerifyAll verifies every service's image (service -> repository@digest)
// and returns what verified each; the error lists every image that did not,
// each as "service <name>: image <repository@digest>: <reason>". The deploy's
// preflight and promotion share it.
func (v *Verifier) VerifyAll(ctx context.Context, images map[string]string) (map[string]Verified, error) {
	out := map[string]Verified{}
	var errs []error
	for _, svc := range slices.Sorted(maps.Keys(images)) {
		got, err := v.Verify(ctx, images[svc])
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out[svc] = got
	}
	return out, errors.Join(errs...)
}
