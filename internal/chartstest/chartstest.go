// Package chartstest renders the charts the way a deploy would, for tests: an
// environment's values with stand-in image digests laid over them.
package chartstest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// Digest is a stand-in digest for service, as a deploy would add after publishing.
func Digest(service string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(service)))
}

// Env loads an embedded environment or fails the test.
func Env(t testing.TB, name string) *environment.Environment {
	t.Helper()
	env, err := environment.Load(k8s.Environments, name)
	require.NoError(t, err)
	return env
}

// DeployValues lays what a deploy adds (every service's image digest) over env's values.
func DeployValues(env *environment.Environment) map[string]any {
	services := map[string]any{}
	for _, s := range catalog.All() {
		services[s.Name] = map[string]any{"image": map[string]any{"digest": Digest(s.Name)}}
	}
	return values.Merge(env.Values, map[string]any{"services": services})
}

// Set builds a nested override from a dotted path: Set("a.b", 1) is {a: {b: 1}}.
func Set(path string, v any) map[string]any {
	keys := strings.Split(path, ".")
	out := map[string]any{keys[len(keys)-1]: v}
	for i := len(keys) - 2; i >= 0; i-- {
		out = map[string]any{keys[i]: out}
	}
	return out
}

// Render renders the umbrella chart for env with values.
func Render(t testing.TB, env *environment.Environment, vals map[string]any) (*render.Result, error) {
	t.Helper()
	return render.Render(context.Background(), render.Request{
		Chart: Chart(t), Release: env.Release, Namespace: env.Namespace, Values: vals,
	})
}

// Chart loads the embedded krgeobuk-apps chart or fails the test.
func Chart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	require.NoError(t, err)
	return ch
}

// MustRender renders env as a deploy would, with overrides laid on top, or fails the test.
func MustRender(t testing.TB, envName string, overrides ...map[string]any) *render.Result {
	t.Helper()
	env := Env(t, envName)
	vals := DeployValues(env)
	for _, o := range overrides {
		vals = values.Merge(vals, o)
	}
	res, err := Render(t, env, vals)
	require.NoError(t, err)
	return res
}

// MonitoringValues lays what a deploy of the monitoring stack adds (each component's image
// digest; stand-ins here, resolved from the registry by a real deploy) over st's values.
func MonitoringValues(st stack.Stack) map[string]any {
	pins := map[string]any{}
	for _, c := range values.Monitoring.Components {
		pins[c] = map[string]any{"image": map[string]any{"digest": Digest(c)}}
	}
	return values.Merge(st.Values, pins)
}

// MustRenderMonitoring renders the monitoring stack of envName where its environment.yaml places
// it (namespace, release), as a deploy would, with overrides laid on top, or fails the test.
func MustRenderMonitoring(t testing.TB, envName string, overrides ...map[string]any) (*render.Result, stack.Stack) {
	t.Helper()
	st, err := stack.For(Env(t, envName), stack.Monitoring)
	require.NoError(t, err)
	vals := MonitoringValues(st)
	for _, o := range overrides {
		vals = values.Merge(vals, o)
	}
	ch, err := st.Chart()
	require.NoError(t, err)
	res, err := render.Render(context.Background(), render.Request{Chart: ch, Release: st.Release, Namespace: st.Namespace, Values: vals})
	require.NoError(t, err)
	return res, st
}
