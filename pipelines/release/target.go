package release

import (
	"errors"
	"fmt"
)

// Target says which revision a rollback or a promotion wants. The zero
// Target asks for the newest verified revision of the whole history.
type Target struct {
	// Revision names one revision; 0 asks for the newest verified one.
	Revision int
	// Before, when set, is the revision being left (the current one, or
	// the one that just failed): only older revisions are chosen, and naming
	// Before itself is refused.
	Before int
	// Exclude is never chosen: a rollback target that has just failed its
	// gates again must not be retried in the same run.
	Exclude int
	// Force accepts a named Revision that was never verified.
	Force bool
}

// ErrNoVerified means the history holds no verified revision a Target may
// choose.
var ErrNoVerified = errors.New("no verified revision")

// ErrNotVerified means a named revision never passed its gates.
var ErrNotVerified = errors.New("was never verified")

// Choose is the one decision of which revision to return to or promote,
// shared by automatic rollback, manual rollback and promotion: the newest
// verified revision that the Target allows, or the named revision, which
// must exist, must not be the one being left, and must be verified unless
// forced. history is oldest first, as History returns it.
func Choose(history []Revision, t Target) (Revision, error) {
	if len(history) == 0 {
		return Revision{}, errors.New("the release does not exist")
	}
	if t.Revision < 0 {
		return Revision{}, fmt.Errorf("revision %d does not exist: revisions start at 1", t.Revision)
	}
	if t.Revision == 0 {
		for i := len(history) - 1; i >= 0; i-- {
			r := history[i]
			if r.Verified && r.Number != t.Exclude && (t.Before == 0 || r.Number < t.Before) {
				return r, nil
			}
		}
		if t.Before > 0 {
			return Revision{}, fmt.Errorf("%w older than revision %d", ErrNoVerified, t.Before)
		}
		return Revision{}, fmt.Errorf("%w in the release history", ErrNoVerified)
	}
	var found *Revision
	for i := range history {
		if history[i].Number == t.Revision {
			found = &history[i]
		}
	}
	switch {
	case found == nil:
		return Revision{}, fmt.Errorf("revision %d does not exist (history holds %d..%d)", t.Revision, history[0].Number, history[len(history)-1].Number)
	case t.Revision == t.Before:
		return Revision{}, fmt.Errorf("revision %d is the current revision", t.Revision)
	case t.Revision == t.Exclude:
		return Revision{}, fmt.Errorf("revision %d has just failed its gates", t.Revision)
	case !found.Verified && !t.Force:
		return Revision{}, fmt.Errorf("revision %d %w", t.Revision, ErrNotVerified)
	}
	return *found, nil
}

// Current is the newest revision of history, and false when there is none.
func Current(history []Revision) (Revision, bool) {
	if len(history) == 0 {
		return Revision{}, false
	}
	return history[len(history)-1], true
}

// ErrCurrentNotVerified means the release's current revision (the newest)
// did not pass its gates, so nothing verified is what runs now.
var ErrCurrentNotVerified = errors.New("the current revision is not verified")

// CurrentVerified is the revision partial deploys keep the other services
// at and promotion copies from: the newest verified revision (Choose with
// the zero Target), and it must be the current one. A failed deploy that was
// rolled back qualifies: its rollback is a new revision, gated and verified,
// running the earlier revision's images. A current revision that never
// passed its gates (a failed rollback, a helm upgrade outside the pipeline, a
// deploy left in place or pending) does not: what runs is not what was
// verified, and the error names both.
func CurrentVerified(history []Revision) (Revision, error) {
	best, err := Choose(history, Target{})
	if err != nil {
		return Revision{}, err
	}
	cur, _ := Current(history)
	if cur.Number != best.Number {
		how := cur.Status
		if cur.Outside {
			how += ", made outside the pipeline"
		}
		return Revision{}, fmt.Errorf("%w: revision %d (%s) runs now, the newest verified is revision %d", ErrCurrentNotVerified, cur.Number, how, best.Number)
	}
	return best, nil
}
