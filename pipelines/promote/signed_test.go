package promote

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
)

// Promotion carries each image's signature and SBOM to the destination
// with the same subject digest, and the copied signature verifies there.
func TestRunCopiesSignaturesThatVerifyAtTheTarget(t *testing.T) {
	from, to := serve(t, nil), serve(t, nil)
	key, err := deploytest.NewKey("cosign.pub")
	require.NoError(t, err)
	verified := map[string]string{
		"auth-server": push(t, from+"/krgeobuk/auth-server", false),
		"auth-client": push(t, from+"/krgeobuk/auth-client", true),
	}
	ctx := context.Background()
	require.NoError(t, deploytest.Attest(ctx, verified, key))
	dest, err := Destinations(appsChart(t), production(t), to+"/prod")
	require.NoError(t, err)
	plan, err := Plan(verified, dest)
	require.NoError(t, err)

	keys, err := attest.Keys(deploytest.Requiring(key))
	require.NoError(t, err)
	v := &attest.Verifier{Keys: keys}
	res, err := Run(ctx, plan, Options{NewBudget: shortBudget})
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, 2, r.Referrers, "%s: its signature and SBOM", r.Service)
		got, err := v.Verify(ctx, r.To)
		require.NoError(t, err, "the copied signature verifies at %s", r.To)
		require.Equal(t, "cosign.pub", got.Key)
	}
}

// A destination that requires signatures refuses, before anything is
// copied, an image that does not verify at the source with a key it
// accepts; one that requires none promotes it.
func TestCheckSigned(t *testing.T) {
	from := serve(t, nil)
	key, err := deploytest.NewKey("cosign.pub")
	require.NoError(t, err)
	other, err := deploytest.NewKey("other.pub")
	require.NoError(t, err)
	ctx := context.Background()
	signed := push(t, from+"/krgeobuk/auth-server", false)
	require.NoError(t, deploytest.Attest(ctx, map[string]string{"auth-server": signed}, key))
	unsigned := push(t, from+"/krgeobuk/authz-server", false)
	byOther := push(t, from+"/krgeobuk/auth-client", false)
	require.NoError(t, deploytest.Attest(ctx, map[string]string{"auth-client": byOther}, other))
	copies := []Copy{{Service: "auth-server", From: signed}, {Service: "authz-server", From: unsigned}, {Service: "auth-client", From: byOther}}

	prod := &environment.Environment{Name: "production", Signing: deploytest.Requiring(key)}
	err = CheckSigned(ctx, copies, prod, Options{NewBudget: shortBudget})
	require.ErrorContains(t, err, "promote: environment production requires signed images; at the source:")
	require.ErrorContains(t, err, "service authz-server: image "+unsigned+": not signed")
	require.ErrorContains(t, err, "service auth-client: image "+byOther+": signature ")
	require.NotContains(t, err.Error(), "service auth-server:", "the signed image passes")

	require.NoError(t, CheckSigned(ctx, copies[:1], prod, Options{NewBudget: shortBudget}))
	require.NoError(t, CheckSigned(ctx, copies, &environment.Environment{Name: "development"}, Options{}))
}
