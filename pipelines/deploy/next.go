package deploy

import (
	"errors"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// Remedy names what follows a revision that failed.
type Remedy string

const (
	// RollBack returns to Action.Target, the newest verified revision older
	// than the failed one, and gates it again.
	RollBack Remedy = "roll back"
	// Uninstall removes a failed first install: nothing verified ever ran,
	// and an unverified release must not stay behind.
	Uninstall Remedy = "uninstall"
	// Leave keeps the failed revision in place: nothing verified exists to
	// return to, and an upgrade is never uninstalled.
	Leave Remedy = "leave in place"
)

// Action is the decision of Next.
type Action struct {
	Remedy Remedy
	// Target is the revision to return to, for RollBack.
	Target release.Revision
}

// Failed describes the revision that failed, as Next needs it.
type Failed struct {
	// Revision is the failed revision's number.
	Revision int
	// FirstInstall is true when the release did not exist before this run.
	// It is observed before the upgrade, never inferred from a history Helm
	// may have pruned: uninstalling an upgraded release would lose it.
	FirstInstall bool
	// Exclude is a revision that must not be chosen again: the target of a
	// manual rollback that has just failed its own gates.
	Exclude int
}

// Next decides what follows a failed revision from the release history
// alone: roll back to the newest verified revision older than the failed one
// (never blindly the previous one; release.Choose is the one rule shared
// with manual rollback and promotion), else uninstall a failed first
// install, else leave it in place. It changes nothing and needs no cluster.
func Next(history []release.Revision, f Failed) (Action, error) {
	target, err := release.Choose(history, release.Target{Before: f.Revision, Exclude: f.Exclude})
	switch {
	case err == nil:
		return Action{Remedy: RollBack, Target: target}, nil
	case !errors.Is(err, release.ErrNoVerified):
		return Action{}, err
	case f.FirstInstall:
		return Action{Remedy: Uninstall}, nil
	}
	return Action{Remedy: Leave}, nil
}
