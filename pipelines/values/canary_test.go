package values_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// A canary pinned by CanaryPins runs its digest in production (where digests are demanded),
// whatever tag a lower layer gave it; CanaryOff removes it again; bad pins are refused.
func TestCanaryPins(t *testing.T) {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	require.NoError(t, err)
	env, err := environment.Load(k8s.Environments, "production")
	require.NoError(t, err)
	const canaryDigest = "sha256:00000000000000000000000000000000000000000000000000000000000000c1"
	stable := map[string]values.Image{}
	for _, s := range catalog.All() {
		stable[s.Name] = values.Image{Repository: "reg.example/" + s.Name, Digest: digest}
	}
	floating := svc("auth-server", map[string]any{"canary": map[string]any{"image": map[string]any{"tag": "2.0.0"}}})
	pins, err := values.CanaryPins(map[string]values.Image{"auth-server": {Repository: "reg.example/auth-server", Digest: canaryDigest}}, map[string]int{"auth-server": 2})
	require.NoError(t, err)
	vals := values.Merge(values.Apps.Layer(env.Values, floating, stable), pins)
	res, err := render.Render(t.Context(), render.Request{Chart: ch, Release: env.Release, Namespace: env.Namespace, Values: vals})
	require.NoError(t, err)
	var got *appsv1.Deployment
	for _, o := range res.Objects {
		if d, ok := o.Typed.(*appsv1.Deployment); ok && d.Name == catalog.CanaryDeployment("auth-server") {
			got = d
		}
	}
	require.NotNil(t, got)
	require.Equal(t, "reg.example/auth-server@"+canaryDigest, got.Spec.Template.Spec.Containers[0].Image)
	require.EqualValues(t, 2, *got.Spec.Replicas)
	require.Equal(t, map[string]string{"auth-server": "reg.example/auth-server@" + digest}, pick(values.Images(vals), "auth-server"),
		"the stable image is what the release runs verified; the canary does not replace it")

	res, err = render.Render(t.Context(), render.Request{Chart: ch, Release: env.Release, Namespace: env.Namespace,
		Values: values.Merge(vals, values.CanaryOff("auth-server"))})
	require.NoError(t, err)
	for _, o := range res.Objects {
		require.NotEqual(t, catalog.CanaryDeployment("auth-server"), o.U.GetName(), "%s: the canary is gone", o.Ref())
	}

	for name, bad := range map[string]struct {
		img values.Image
		n   int
		err string
	}{
		"tag only":      {values.Image{Repository: "reg.example/auth-server", Tag: "2.0.0"}, 1, `canary of auth-server: image "reg.example/auth-server:2.0.0" is not pinned by digest`},
		"no pods":       {values.Image{Repository: "reg.example/auth-server", Digest: canaryDigest}, 0, "canary of auth-server: 0 replicas; a canary runs at least one pod"},
		"no repository": {values.Image{Digest: canaryDigest}, 1, "canary of auth-server: image \"@" + canaryDigest + "\" is not pinned by digest"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := values.CanaryPins(map[string]values.Image{"auth-server": bad.img}, map[string]int{"auth-server": bad.n})
			require.EqualError(t, err, bad.err)
		})
	}
	_, err = values.CanaryPins(map[string]values.Image{"billing-server": {Repository: "r", Digest: canaryDigest}}, map[string]int{"billing-server": 1})
	require.EqualError(t, err, "canary of billing-server: not a service of krgeobuk-apps")
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
