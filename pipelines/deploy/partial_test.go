package deploy_test

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// replicaSets lists each Deployment's ReplicaSets by name (the name carries
// the pod-template hash), sorted: a new entry means the Deployment rolled.
func (f *fixture) replicaSets() map[string][]string {
	f.t.Helper()
	list, err := f.cs.AppsV1().ReplicaSets(f.env.Namespace).List(context.Background(), metav1.ListOptions{})
	require.NoError(f.t, err)
	out := map[string][]string{}
	for _, rs := range list.Items {
		for _, o := range rs.OwnerReferences {
			if o.Kind == "Deployment" {
				out[o.Name] = append(out[o.Name], rs.Name)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// A deploy of one service keeps the other three at the digests the current
// verified revision runs: only the named Deployment gets a new ReplicaSet,
// and the report says which were kept, from which revision, at which digest.
func TestPartialDeployChangesOnlyTheNamedService(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("ci")
	ctx := context.Background()
	v1 := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: v1}))
	before := f.replicaSets()
	require.Len(t, before, 4)

	v2 := f.publish("2.0.0")
	// A values change that would roll another Deployment is refused: only the
	// named services may change.
	res := d.Deploy(ctx, deploy.Request{Images: map[string]string{"authz-server": v2["authz-server"]}, Services: []string{"authz-server"},
		Values: svcValues("auth-client", map[string]any{"replicas": 3})})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "a partial deploy changes only the services named, but against verified revision 1 Deployment/auth-client would change at spec.replicas")
	require.Len(t, f.history(d), 1, "nothing applied")

	res = d.Deploy(ctx, deploy.Request{Images: map[string]string{"authz-server": v2["authz-server"]}, Services: []string{"authz-server"}})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 2, res.Revision)
	require.Equal(t, []report.Kept{
		{Service: "auth-server", Image: v1["auth-server"], Revision: 1},
		{Service: "auth-client", Image: v1["auth-client"], Revision: 1},
		{Service: "portal-client", Image: v1["portal-client"], Revision: 1},
	}, res.Kept)
	require.Contains(t, res.Notes, "auth-server kept at "+v1["auth-server"]+", as verified revision 1 runs it")

	after := f.replicaSets()
	for _, svc := range []string{"auth-server", "auth-client", "portal-client"} {
		require.Equal(t, before[svc], after[svc], "%s did not roll", svc)
		_, _, image := f.podTemplate(svc)
		require.Equal(t, v1[svc], image)
	}
	require.Len(t, after["authz-server"], len(before["authz-server"])+1, "authz-server rolled to a new ReplicaSet")
	_, _, image := f.podTemplate("authz-server")
	require.Equal(t, v2["authz-server"], image)

	h := f.history(d)
	require.Len(t, h, 2)
	require.True(t, h[1].Verified)
	want := map[string]string{"auth-server": v1["auth-server"], "authz-server": v2["authz-server"], "auth-client": v1["auth-client"], "portal-client": v1["portal-client"]}
	require.Equal(t, want, h[1].Images, "the new revision records every service's image")
}

// A partial deploy needs a verified revision to take the other services
// from, and one that runs them all; otherwise it is refused with nothing
// installed.
func TestPartialDeployRefusedWithoutAVerifiedRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("ci")
	ctx := context.Background()
	v1 := f.publish("1.0.0")

	res := d.Deploy(ctx, deploy.Request{Images: map[string]string{"auth-server": v1["auth-server"]}, Services: []string{"auth-server"}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "a partial deploy keeps the other services at the current verified revision, and there is none: the release does not exist; deploy every service (no --service)")
	require.Empty(t, f.history(d), "nothing installed")
	deps, err := f.cs.AppsV1().Deployments(f.env.Namespace).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, deps.Items)

	// Images given for services not named are refused, not deployed silently.
	res = d.Deploy(ctx, deploy.Request{Images: v1, Services: []string{"auth-server"}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "not among the --service deployed (auth-server)")

	// A verified revision without portal-client cannot supply it once it is
	// enabled again.
	off := svcValues("portal-client", map[string]any{"enabled": false})
	off["ingress"] = map[string]any{"hosts": []any{map[string]any{"host": "auth.dev.krgeobuk.com", "tlsSecretName": "auth-dev-krgeobuk-com-tls",
		"routes": []any{map[string]any{"path": "/api", "service": "auth-server"}, map[string]any{"path": "/", "service": "auth-client"}}}}}
	three := map[string]string{"auth-server": v1["auth-server"], "authz-server": v1["authz-server"], "auth-client": v1["auth-client"]}
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: three, Values: off}))
	res = d.Deploy(ctx, deploy.Request{Images: map[string]string{"auth-server": v1["auth-server"]}, Services: []string{"auth-server"}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "keeps the other services at verified revision 1, which does not run portal-client")
	require.Len(t, f.history(d), 1)
}
