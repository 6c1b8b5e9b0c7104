package values_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

const digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func svc(name string, v map[string]any) map[string]any {
	return map[string]any{"services": map[string]any{name: v}}
}

func TestMerge(t *testing.T) {
	base := map[string]any{
		"global":   map[string]any{"environment": "staging", "dataServer": map[string]any{"address": "10.0.0.1"}},
		"services": map[string]any{"auth-server": map[string]any{"replicas": 2, "calls": []any{"authz-server"}}},
	}
	over := map[string]any{
		"global":   map[string]any{"dataServer": map[string]any{"address": "10.0.0.2"}},
		"services": map[string]any{"auth-server": map[string]any{"calls": []any{}}},
	}
	got := values.Merge(base, over)
	require.Equal(t, map[string]any{
		"global":   map[string]any{"environment": "staging", "dataServer": map[string]any{"address": "10.0.0.2"}},
		"services": map[string]any{"auth-server": map[string]any{"replicas": 2, "calls": []any{}}},
	}, got, "maps merge key by key; a list replaces the list")

	got["global"].(map[string]any)["environment"] = "production"
	over["global"].(map[string]any)["dataServer"].(map[string]any)["address"] = "changed"
	require.Equal(t, "staging", base["global"].(map[string]any)["environment"], "the result shares no map with base")
	require.Equal(t, "10.0.0.2", got["global"].(map[string]any)["dataServer"].(map[string]any)["address"], "nor with over")
}

func TestLayerOrder(t *testing.T) {
	env := values.Merge(svc("auth-server", map[string]any{"replicas": 2, "image": map[string]any{"tag": "1.0"}}),
		svc("auth-client", map[string]any{"replicas": 1}))
	request := svc("auth-server", map[string]any{"replicas": 5, "image": map[string]any{"repository": "evil/override", "tag": "latest"}})
	pins := map[string]values.Image{"auth-server": {Repository: "reg/auth-server", Digest: digest}}

	got := values.Layer(env, request, pins)
	auth := got["services"].(map[string]any)["auth-server"].(map[string]any)
	require.Equal(t, 5, auth["replicas"], "the request overrides the environment")
	require.Equal(t, map[string]any{"repository": "reg/auth-server", "digest": digest, "tag": ""}, auth["image"],
		"the pins override the request: a request can never float an image")
	require.Equal(t, 1, got["services"].(map[string]any)["auth-client"].(map[string]any)["replicas"])
	require.Equal(t, map[string]string{"auth-server": "reg/auth-server@" + digest}, values.Images(got))
	require.Equal(t, 2, env["services"].(map[string]any)["auth-server"].(map[string]any)["replicas"], "inputs untouched")
}

func TestImages(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want map[string]string
	}{
		{"digest wins over tag", svc("a", map[string]any{"image": map[string]any{"repository": "r/a", "digest": digest, "tag": "1"}}), map[string]string{"a": "r/a@" + digest}},
		{"tag when no digest", svc("a", map[string]any{"image": map[string]any{"repository": "r/a", "tag": "1"}}), map[string]string{"a": "r/a:1"}},
		{"no repository", svc("a", map[string]any{"image": map[string]any{"tag": "1"}}), nil},
		{"no image", svc("a", map[string]any{"replicas": 1}), nil},
		{"no services", map[string]any{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, values.Images(tt.in))
		})
	}
}

func TestChartQuestions(t *testing.T) {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	require.NoError(t, err)
	for _, name := range []string{"development", "staging", "production"} {
		t.Run(name, func(t *testing.T) {
			env, err := environment.Load(k8s.Environments, name)
			require.NoError(t, err)

			enabled, err := values.Enabled(ch, env.Values)
			require.NoError(t, err)
			require.Len(t, enabled, len(catalog.All()), "every environment deploys the four services")

			off := values.Merge(env.Values, svc("portal-client", map[string]any{"enabled": false}))
			enabled, err = values.Enabled(ch, off)
			require.NoError(t, err)
			require.Len(t, enabled, len(catalog.All())-1)
			for _, s := range enabled {
				require.NotEqual(t, "portal-client", s.Name)
			}

			repos, err := values.Repositories(ch, env.Values)
			require.NoError(t, err)
			require.Equal(t, "ghcr.io/krgeobuk/auth-server", repos["auth-server"], "the chart default when the environment names none")
			moved := values.Merge(env.Values, svc("auth-server", map[string]any{"image": map[string]any{"repository": "reg.example/auth"}}))
			repos, err = values.Repositories(ch, moved)
			require.NoError(t, err)
			require.Equal(t, "reg.example/auth", repos["auth-server"])

			policy, err := values.ImagePolicy(ch, env.Values)
			require.NoError(t, err)
			want := values.PolicyDigest
			if name == "development" {
				want = values.PolicyTag
			}
			require.Equal(t, want, policy)

			pinned := values.StandInPins(env.Values)
			_, err = render.Render(t.Context(), render.Request{Chart: ch, Release: env.Release, Namespace: env.Namespace, Values: pinned})
			require.NoError(t, err, "stand-in pins render even where digests are demanded")
			for _, s := range catalog.All() {
				require.Contains(t, dig(pinned, "services", s.Name, "image", "digest"), "sha256:")
				require.Equal(t, dig(env.Values, "services", s.Name, "image", "repository"), dig(pinned, "services", s.Name, "image", "repository"),
					"stand-in pins add only digests: the repository stays the environment's or the chart's")
			}
		})
	}
}

func TestCheckImages(t *testing.T) {
	enabled, err := catalog.Select([]string{"auth-server", "auth-client"})
	require.NoError(t, err)
	tests := []struct {
		name   string
		images map[string]string
		err    string
	}{
		{"exactly the enabled ones", map[string]string{"auth-server": "a", "auth-client": "b"}, ""},
		{"one missing", map[string]string{"auth-server": "a"}, "no image given for enabled service(s) [auth-client]"},
		{"one disabled", map[string]string{"auth-server": "a", "auth-client": "b", "portal-client": "c"}, "image given for service(s) [portal-client] that the environment does not deploy"},
		{"one unknown", map[string]string{"auth-server": "a", "auth-client": "b", "billing": "c"}, "[billing]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := values.CheckImages(enabled, tt.images)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// dig follows keys through nested maps; nil where a key is missing.
func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, _ := cur.(map[string]any)
		cur = mm[k]
	}
	return cur
}

// The monitoring stack keeps each component's image at <component>.image and its policy at the
// top level; a pin keeps the exact tag the chart's schema demands beside the digest.
func TestMonitoringLayout(t *testing.T) {
	ch, err := render.LoadFS(charts.MonitoringStack, "monitoring-stack")
	require.NoError(t, err)
	m := values.Monitoring
	env := map[string]any{"imagePolicy": "digest", "grafana": map[string]any{"enabled": false},
		"alertmanager": map[string]any{"image": map[string]any{"repository": "mirror.example/alertmanager"}}}

	enabled, err := m.Enabled(ch, env)
	require.NoError(t, err)
	require.Equal(t, []string{"prometheus", "alertmanager"}, enabled, "grafana switched off, the layout's order")

	configured, err := m.Configured(ch, env)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"prometheus":   "quay.io/prometheus/prometheus:v3.15.1",
		"alertmanager": "mirror.example/alertmanager:v0.35.0",
	}, configured, "the chart's exact versions, the environment's repository where it names one")

	policy, err := m.ImagePolicy(ch, env)
	require.NoError(t, err)
	require.Equal(t, values.PolicyDigest, policy)
	policy, err = m.ImagePolicy(ch, nil)
	require.NoError(t, err)
	require.Equal(t, values.PolicyTag, policy, "the chart's default")

	pins := map[string]values.Image{
		"prometheus":   {Repository: "reg/prometheus", Digest: digest, Tag: "v3.16.0"},
		"alertmanager": {Repository: "reg/alertmanager", Digest: digest},
	}
	request := map[string]any{"prometheus": map[string]any{"image": map[string]any{"tag": "v9.9.9"}, "replicas": 2}}
	got := m.Layer(env, request, pins)
	require.Equal(t, map[string]any{"repository": "reg/prometheus", "digest": digest, "tag": "v3.16.0"}, dig(got, "prometheus", "image"),
		"a pin by tag records that tag beside the digest")
	require.Equal(t, map[string]any{"repository": "reg/alertmanager", "digest": digest}, dig(got, "alertmanager", "image"),
		"a pin by digest keeps the tag of the layers below (the chart's), which the schema requires")
	require.Equal(t, 2, dig(got, "prometheus", "replicas"))
	require.Nil(t, got["services"], "nothing lands where the apps keep their images")
	require.Equal(t, map[string]string{"prometheus": "reg/prometheus@" + digest, "alertmanager": "reg/alertmanager@" + digest}, m.Images(got))

	_, err = render.Render(t.Context(), render.Request{Chart: ch, Release: "monitoring", Namespace: "monitoring", Values: got})
	require.NoError(t, err, "pinned values render where digests are demanded")

	require.NoError(t, m.CheckImages(enabled, map[string]string{"prometheus": "x"}, false), "the monitoring stack may name only some images")
	require.EqualError(t, m.CheckImages(enabled, map[string]string{"grafana": "x", "loki": "y"}, false),
		"image given for component(s) [grafana loki] that the environment does not deploy (known and enabled: [prometheus alertmanager])")
	require.EqualError(t, m.CheckImages(enabled, nil, true), "no image given for enabled component(s) [prometheus alertmanager]")
}
