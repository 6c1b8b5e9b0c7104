package deploy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// revisions builds history 1..n (oldest first); verified lists the
// verified ones.
func revisions(n int, verified ...int) []release.Revision {
	out := make([]release.Revision, n)
	for i := range out {
		out[i].Number = i + 1
	}
	for _, v := range verified {
		out[v-1].Verified = true
	}
	return out
}

// What follows a failure is decided from the history alone, without a
// cluster.
func TestNext(t *testing.T) {
	tests := []struct {
		name    string
		history []release.Revision
		failed  deploy.Failed
		remedy  deploy.Remedy
		target  int
	}{
		{"upgrade fails: back to the newest verified", revisions(4, 1, 2), deploy.Failed{Revision: 4}, deploy.RollBack, 2},
		{"unverified revisions in between are skipped", revisions(5, 2), deploy.Failed{Revision: 5}, deploy.RollBack, 2},
		{"never current-1 when it was not verified", revisions(3, 1), deploy.Failed{Revision: 3}, deploy.RollBack, 1},
		{"first install fails: uninstall", revisions(1), deploy.Failed{Revision: 1, FirstInstall: true}, deploy.Uninstall, 0},
		{"first install flag wins only without a verified target", revisions(2, 1), deploy.Failed{Revision: 2, FirstInstall: true}, deploy.RollBack, 1},
		{"upgrade without any verified revision: left in place", revisions(3), deploy.Failed{Revision: 3}, deploy.Leave, 0},
		{"pruned history is never taken for a first install", revisions(1), deploy.Failed{Revision: 1}, deploy.Leave, 0},
		{"a manual rollback's failed target is not retried", revisions(6, 2, 4), deploy.Failed{Revision: 6, Exclude: 4}, deploy.RollBack, 2},
		{"nothing else verified after the excluded target", revisions(6, 4), deploy.Failed{Revision: 6, Exclude: 4}, deploy.Leave, 0},
		{"a verified revision newer than the failed one is not a target", revisions(4, 4), deploy.Failed{Revision: 3}, deploy.Leave, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deploy.Next(tt.history, tt.failed)
			require.NoError(t, err)
			require.Equal(t, tt.remedy, got.Remedy)
			require.Equal(t, tt.target, got.Target.Number)
		})
	}

	_, err := deploy.Next(nil, deploy.Failed{Revision: 1})
	require.ErrorContains(t, err, "the release does not exist", "an empty history is an error, not a guess")
}
