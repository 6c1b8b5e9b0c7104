package attest

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Copy copies the signature and SBOM referrers of from (repository@digest)
// to to, the same digest in another repository, byte for byte: their
// manifests keep their digests and their subject, so a signature that
// verified at the source verifies at the destination. It returns how many
// referrers it copied. Other referrers are left where they are.
func Copy(ctx context.Context, from, to string, src, dst []remote.Option) (int, error) {
	f, err := name.NewDigest(from)
	if err != nil {
		return 0, fmt.Errorf("copy referrers: %w", err)
	}
	t, err := name.NewDigest(to)
	if err != nil {
		return 0, fmt.Errorf("copy referrers: %w", err)
	}
	if f.DigestStr() != t.DigestStr() {
		return 0, fmt.Errorf("copy referrers: %s and %s differ in digest", from, to)
	}
	src = append([]remote.Option{remote.WithContext(ctx)}, src...)
	dst = append([]remote.Option{remote.WithContext(ctx)}, dst...)
	refs, err := referrers(f, src)
	if err != nil {
		return 0, fmt.Errorf("copy referrers of %s: %w", from, err)
	}
	n := 0
	for _, r := range refs {
		if r.artifactType != SignatureArtifactType && r.artifactType != SBOMArtifactType {
			continue
		}
		for _, d := range append(r.manifest.Layers, r.manifest.Config) {
			l, err := remote.Layer(f.Context().Digest(d.Digest.String()), src...)
			if err != nil {
				return n, fmt.Errorf("copy referrer %s of %s: %w", r.digest, from, err)
			}
			if err := remote.WriteLayer(t.Context(), l, dst...); err != nil {
				return n, fmt.Errorf("copy referrer %s to %s: %w", r.digest, t.Context().Name(), err)
			}
		}
		// The manifest as the source stored it: same bytes, same digest,
		// same subject; Put keeps the destination's sha256-<hex> tag up to
		// date where it has no referrers API.
		if err := remote.Put(t.Context().Digest(r.digest), r.raw, dst...); err != nil {
			return n, fmt.Errorf("copy referrer %s to %s: %w", r.digest, t.Context().Name(), err)
		}
		n++
	}
	return n, nil
}
