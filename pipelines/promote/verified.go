package promote

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// Verified returns the images of the source environment's current verified
// revision (release.CurrentVerified: the newest verified revision, which must
// be the one that runs now) and that revision's number. A failed deploy that
// was rolled back promotes the rollback, which runs the earlier verified
// images; a current revision that never passed its gates is refused. Only
// digest references count: a revision whose images were deployed by tag
// cannot be promoted by digest.
func Verified(history []release.Revision) (map[string]string, int, error) {
	best, err := release.CurrentVerified(history)
	if err != nil {
		return nil, 0, fmt.Errorf("promote: %w; promotion copies only what runs verified in the source environment: deploy (or roll back) there first", err)
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

// Named checks images a person named for promotion (service ->
// repository@digest) against what the verified revision rev runs (verified,
// from Verified): each must be the very digest it runs, whatever repository
// spells it. It returns the verified revision's references for the services
// named, which are what gets copied; a mismatch names the service and both
// digests.
func Named(named, verified map[string]string, from string, rev int) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, svc := range slices.Sorted(maps.Keys(named)) {
		want, err := name.NewDigest(named[svc])
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %q is not pinned by digest (repository@sha256:...)", svc, named[svc]))
			continue
		}
		ref, ok := verified[svc]
		if !ok {
			errs = append(errs, fmt.Errorf("service %s: %s's verified revision %d does not run it", svc, from, rev))
			continue
		}
		have, err := name.NewDigest(ref)
		if err != nil {
			return nil, err // Verified returns digest references only
		}
		if have.DigestStr() != want.DigestStr() {
			errs = append(errs, fmt.Errorf("service %s: %s is not verified in %s: its verified revision %d runs %s, not %s",
				svc, named[svc], from, rev, have.DigestStr(), want.DigestStr()))
			continue
		}
		out[svc] = ref
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	return out, nil
}
