package promote

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

func appsChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	require.NoError(t, err)
	return ch
}

func production(t *testing.T) *environment.Environment {
	t.Helper()
	e, err := environment.Load(k8s.Environments, "production")
	require.NoError(t, err)
	return e
}

// serve starts a real OCI registry (go-containerregistry's in-process
// implementation) on a loopback port. wrap, when set, sits in front of it.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func shortBudget() retry.Backoff {
	return retry.WithMaxRetries(2, retry.NewConstant(10*time.Millisecond))
}

// push uploads a random single-platform image, or a random multi-platform
// index, and returns repository@digest.
func push(t *testing.T, repo string, index bool) string {
	t.Helper()
	r, err := name.NewRepository(repo)
	require.NoError(t, err)
	if index {
		idx, err := random.Index(256, 2, 2)
		require.NoError(t, err)
		d, err := idx.Digest()
		require.NoError(t, err)
		ref := r.Digest(d.String())
		require.NoError(t, remote.WriteIndex(ref, idx))
		return ref.Name()
	}
	img, err := random.Image(256, 2)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)
	ref := r.Digest(d.String())
	require.NoError(t, remote.Write(ref, img))
	return ref.Name()
}

func TestPlan(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	got, err := Plan(
		map[string]string{"portal-client": "ghcr.io/krgeobuk/portal-client@" + d, "auth-server": "ghcr.io/krgeobuk/auth-server@" + d},
		map[string]string{"auth-server": "registry.krgeobuk.com/prod/auth-server", "portal-client": "registry.krgeobuk.com/prod/portal-client"})
	require.NoError(t, err)
	require.Equal(t, []Copy{
		{Service: "auth-server", From: "ghcr.io/krgeobuk/auth-server@" + d, To: "registry.krgeobuk.com/prod/auth-server@" + d},
		{Service: "portal-client", From: "ghcr.io/krgeobuk/portal-client@" + d, To: "registry.krgeobuk.com/prod/portal-client@" + d},
	}, got, "deploy order, same digest")

	_, err = Plan(map[string]string{
		"billing":      "ghcr.io/krgeobuk/billing@" + d,
		"auth-server":  "ghcr.io/krgeobuk/auth-server:1.4.2",
		"authz-server": "ghcr.io/krgeobuk/authz-server@" + d,
	}, map[string]string{"auth-server": "x.io/a"})
	require.ErrorContains(t, err, `unknown service "billing"`)
	require.ErrorContains(t, err, `service auth-server: "ghcr.io/krgeobuk/auth-server:1.4.2" is not pinned by digest`)
	require.ErrorContains(t, err, "service authz-server: no destination repository")

	_, err = Plan(nil, nil)
	require.ErrorContains(t, err, "no verified images given")
}

func TestDestinations(t *testing.T) {
	apps, prod := appsChart(t), production(t)
	got, err := Destinations(apps, prod, "")
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"auth-server": "ghcr.io/krgeobuk/auth-server", "authz-server": "ghcr.io/krgeobuk/authz-server",
		"auth-client": "ghcr.io/krgeobuk/auth-client", "portal-client": "ghcr.io/krgeobuk/portal-client",
	}, got, "the chart's repositories, as the environment deploys them")

	got, err = Destinations(appsChart(t), production(t), "127.0.0.1:5000/prod/")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:5000/prod/auth-client", got["auth-client"])

	_, err = Destinations(appsChart(t), production(t), "ghcr.io/Krgeobuk")
	require.ErrorContains(t, err, `registry "ghcr.io/Krgeobuk"`)
	moved := *prod
	moved.Values = values.Merge(prod.Values, map[string]any{"services": map[string]any{
		"auth-server": map[string]any{"image": map[string]any{"repository": "reg.example/auth"}}}})
	got, err = Destinations(apps, &moved, "")
	require.NoError(t, err)
	require.Equal(t, "reg.example/auth", got["auth-server"], "the environment's repository wins over the chart's")
}

func TestRunCopiesByDigestAndVerifies(t *testing.T) {
	from, to := serve(t, nil), serve(t, nil)
	verified := map[string]string{
		"auth-server": push(t, from+"/krgeobuk/auth-server", false),
		"auth-client": push(t, from+"/krgeobuk/auth-client", true),
	}
	dest, err := Destinations(appsChart(t), production(t), to+"/prod")
	require.NoError(t, err)
	plan, err := Plan(verified, dest)
	require.NoError(t, err)

	res, err := Run(context.Background(), plan, Options{NewBudget: shortBudget})
	require.NoError(t, err)
	require.Len(t, res, 2)
	for _, r := range res {
		require.True(t, r.Copied, r.Service)
		ref, err := name.NewDigest(r.To)
		require.NoError(t, err)
		d, err := remote.Head(ref)
		require.NoError(t, err, "the destination serves %s", r.To)
		require.Equal(t, ref.DigestStr(), d.Digest.String())
	}
	idx, err := remote.Index(mustDigest(t, res[1].To))
	require.NoError(t, err, "a multi-platform image stays an index")
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, m.Manifests, 2)

	again, err := Run(context.Background(), plan, Options{NewBudget: shortBudget})
	require.NoError(t, err)
	require.False(t, again[0].Copied, "already promoted: nothing copied")
	require.False(t, again[1].Copied)
}

func TestRunStopsAtAMissingImage(t *testing.T) {
	from, to := serve(t, nil), serve(t, nil)
	missing := from + "/krgeobuk/auth-server@sha256:" + strings.Repeat("0", 64)
	plan, err := Plan(map[string]string{
		"auth-server":  missing,
		"authz-server": push(t, from+"/krgeobuk/authz-server", false),
	}, mustDest(t, to))
	require.NoError(t, err)

	res, err := Run(context.Background(), plan, Options{NewBudget: shortBudget})
	require.ErrorContains(t, err, "promote auth-server: copy "+missing)
	require.Empty(t, res)
	_, err = remote.Head(mustDigest(t, plan[1].To))
	require.Error(t, err, "the images after the failure are left untouched")
}

// A registry that wants credentials: without them the 401 is final (not
// retried); with them the copy goes through.
func TestRunUsesDestinationCredentials(t *testing.T) {
	var denied atomic.Int32
	from := serve(t, nil)
	to := serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret" {
				denied.Add(1)
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	plan, err := Plan(map[string]string{"auth-server": push(t, from+"/krgeobuk/auth-server", false)}, mustDest(t, to))
	require.NoError(t, err)

	_, err = Run(context.Background(), plan, Options{NewBudget: shortBudget})
	require.ErrorContains(t, err, "promote auth-server: look up")
	require.ErrorContains(t, err, "401")
	require.LessOrEqual(t, denied.Load(), int32(3), "a 401 is not retried")

	auth := remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})
	res, err := Run(context.Background(), plan, Options{Dest: []remote.Option{auth}, NewBudget: shortBudget})
	require.NoError(t, err)
	require.True(t, res[0].Copied)
}

func mustDest(t *testing.T, host string) map[string]string {
	t.Helper()
	d, err := Destinations(appsChart(t), production(t), host+"/prod")
	require.NoError(t, err)
	return d
}

func mustDigest(t *testing.T, ref string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(ref)
	require.NoError(t, err)
	return d
}

func TestVerifiedIsTheCurrentVerifiedRevision(t *testing.T) {
	d := "sha256:" + strings.Repeat("cd", 32)
	e := "sha256:" + strings.Repeat("ef", 32)
	// 4 failed its gates and was rolled back: 5 runs 3's images, verified.
	history := []release.Revision{
		{Number: 3, Verified: true, Status: "superseded", Images: map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + d}},
		{Number: 4, Verified: false, Status: "failed", Images: map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + e}},
		{Number: 5, Verified: true, Status: "deployed", Images: map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + d, "auth-client": "ghcr.io/krgeobuk/auth-client@" + d}},
	}
	got, rev, err := Verified(history)
	require.NoError(t, err)
	require.Equal(t, 5, rev, "the rollback, which runs the earlier verified images")
	require.Len(t, got, 2)

	_, _, err = Verified(history[:2])
	require.ErrorContains(t, err, "the current revision is not verified: revision 4 (failed) runs now, the newest verified is revision 3")
	_, _, err = Verified(history[1:2])
	require.ErrorContains(t, err, "no verified revision")
	_, _, err = Verified([]release.Revision{{Number: 2, Verified: true, Images: map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server:1.0"}}})
	require.ErrorContains(t, err, `revision 2 runs auth-server as "ghcr.io/krgeobuk/auth-server:1.0", not pinned by digest`)
}

// Named images must each be the digest the verified revision runs; the
// repository that spells it does not matter, the digest does.
func TestNamedMustBeTheVerifiedDigests(t *testing.T) {
	d := "sha256:" + strings.Repeat("cd", 32)
	e := "sha256:" + strings.Repeat("ef", 32)
	verified := map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + d, "auth-client": "ghcr.io/krgeobuk/auth-client@" + d}
	got, err := Named(map[string]string{"auth-server": "mirror.example/auth-server@" + d}, verified, "staging", 5)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + d}, got, "what staging runs is copied")

	_, err = Named(map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@" + e, "portal-client": "ghcr.io/krgeobuk/portal-client@" + d,
		"auth-client": "ghcr.io/krgeobuk/auth-client:1.0"}, verified, "staging", 5)
	require.ErrorContains(t, err, "service auth-server: ghcr.io/krgeobuk/auth-server@"+e+" is not verified in staging: its verified revision 5 runs "+d+", not "+e)
	require.ErrorContains(t, err, "service portal-client: staging's verified revision 5 does not run it")
	require.ErrorContains(t, err, `service auth-client: "ghcr.io/krgeobuk/auth-client:1.0" is not pinned by digest`)
}
