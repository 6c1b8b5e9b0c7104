package promote

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// Verified returns the images of the newest revision in history that passed
// every gate, and that revision's number. Only digest references count: a
// revision whose images were deployed by tag cannot be promoted by digest.
func Verified(history []release.Revision) (map[string]string, int, error) {
	var best *release.Revision
	for i := range history {
		r := &history[i]
		if r.Verified && (best == nil || r.Number > best.Number) {
			best = r
		}
	}
	if best == nil {
		return nil, 0, fmt.Errorf("promote: no verified revision in the release history; deploy and pass the gates first")
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
