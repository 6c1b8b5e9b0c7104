package release_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// history builds revisions 1..n; verified lists the verified ones.
func history(n int, verified ...int) []release.Revision {
	out := make([]release.Revision, n)
	for i := range out {
		out[i].Number = i + 1
	}
	for _, v := range verified {
		out[v-1].Verified = true
	}
	return out
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name    string
		history []release.Revision
		target  release.Target
		want    int
		err     string
	}{
		// automatic rollback: newest verified older than the failed one
		{"auto: newest verified older", history(5, 1, 3), release.Target{Before: 5}, 3, ""},
		{"auto: never current-1 blindly", history(5, 1, 2), release.Target{Before: 5}, 2, ""},
		{"auto: skips unverified in between", history(6, 2), release.Target{Before: 6}, 2, ""},
		{"auto: a verified newer than Before is not a target", history(4, 4), release.Target{Before: 3}, 0, "no verified revision older than revision 3"},
		{"auto: none verified", history(3), release.Target{Before: 3}, 0, "no verified revision older than revision 3"},
		{"auto: excluded target that just failed", history(6, 2, 4), release.Target{Before: 6, Exclude: 4}, 2, ""},
		// manual rollback: Before is the current revision
		{"manual: default", history(4, 1, 2, 4), release.Target{Before: 4}, 2, ""},
		{"manual: named verified", history(4, 1, 2), release.Target{Revision: 1, Before: 4}, 1, ""},
		{"manual: named unverified refused", history(4, 1), release.Target{Revision: 3, Before: 4}, 0, "revision 3 was never verified"},
		{"manual: named unverified forced", history(4, 1), release.Target{Revision: 3, Before: 4, Force: true}, 3, ""},
		{"manual: current refused", history(4, 4), release.Target{Revision: 4, Before: 4}, 0, "revision 4 is the current revision"},
		{"manual: unknown", history(4, 1), release.Target{Revision: 9, Before: 4}, 0, "revision 9 does not exist (history holds 1..4)"},
		{"manual: negative", history(4, 1), release.Target{Revision: -1, Before: 4}, 0, "revision -1 does not exist"},
		// promotion: the newest verified, current included
		{"promote: current verified", history(3, 1, 3), release.Target{}, 3, ""},
		{"promote: newest verified", history(3, 1), release.Target{}, 1, ""},
		{"promote: none verified", history(2), release.Target{}, 0, "no verified revision in the release history"},
		{"promote: named must be verified", history(3, 1), release.Target{Revision: 2}, 0, "revision 2 was never verified"},
		{"no release", nil, release.Target{}, 0, "the release does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := release.Choose(tt.history, tt.target)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Number)
		})
	}
}

// The revision partial deploys and promotion take images from: the newest
// verified one, only when it is what runs now.
func TestCurrentVerified(t *testing.T) {
	rolledBack := history(3, 1, 3) // 2 failed, 3 is the rollback to 1, gated and verified
	rolledBack[1].Status = "failed"
	failedRollback := history(4, 1, 3)
	failedRollback[3].Status = "failed"
	outside := history(2, 1)
	outside[1].Status, outside[1].Outside = "deployed", true
	tests := []struct {
		name    string
		history []release.Revision
		want    int
		err     string
	}{
		{"current verified", history(2, 1, 2), 2, ""},
		{"a failed deploy rolled back: the rollback revision", rolledBack, 3, ""},
		{"a failed rollback runs now", failedRollback, 0, "the current revision is not verified: revision 4 (failed) runs now, the newest verified is revision 3"},
		{"helm upgrade outside the pipeline", outside, 0, "revision 2 (deployed, made outside the pipeline) runs now, the newest verified is revision 1"},
		{"nothing verified", history(2), 0, "no verified revision in the release history"},
		{"first install", nil, 0, "the release does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := release.CurrentVerified(tt.history)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Number)
		})
	}
}
