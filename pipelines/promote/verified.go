package promote

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// Verified returns the images of the newest revision in history that passed
// every gate, and that revision's number; the choice is release.Choose's,
// the same one rollbacks make. Only digest references count: a revision
// whose images were deployed by tag cannot be promoted by digest.
func Verified(history []release.Revision) (map[string]string, int, error) {
	best, err := release.Choose(history, release.Target{})
	if err != nil {
		return nil, 0, fmt.Errorf("promote: %w; deploy and pass the gates first", err)
	}
	out := map[string]string{}
	for svc, ref := range best.Images {
		if _, err := name.NewDigest(ref); err != nil {
			return nil, 0, fmt.Errorf("promote: revision %d runs %s as %q, not pinned by digest", best.Number, svc, ref)
		}
		out[svc] = ref
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("promote: verified revision %d records no images", best.Number)
	}
	return out, best.Number, nil
}
