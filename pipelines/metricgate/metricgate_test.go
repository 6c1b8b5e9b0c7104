package metricgate

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, yaml.Unmarshal(data, &out))
	return out
}

// Each environment gets the thresholds of its own alerts.
func TestForEnvironmentReadsTheAlertThresholds(t *testing.T) {
	defaults := readYAML(t, filepath.Join("..", "..", "charts", "monitoring-stack", "values.yaml"))
	for _, env := range []string{"development", "staging", "production"} {
		t.Run(env, func(t *testing.T) {
			vals := readYAML(t, filepath.Join("..", "..", "k8s", "environments", env, "monitoring-stack.values.yaml"))
			th, err := ForEnvironment(defaults, vals)
			require.NoError(t, err)
			require.Equal(t, Thresholds{MaxErrorRatio: 0.05, MaxP95: time.Second, Window: 5 * time.Minute}, th)
		})
	}
	override := map[string]any{"alerts": map[string]any{
		"highErrorRate": map[string]any{"ratio": 0.01, "window": "2m"},
		"highLatency":   map[string]any{"p95Seconds": 0.25},
	}}
	th, err := ForEnvironment(defaults, override)
	require.NoError(t, err)
	require.Equal(t, Thresholds{MaxErrorRatio: 0.01, MaxP95: 250 * time.Millisecond, Window: 2 * time.Minute}, th)
}

func TestBadInputIsRefusedBeforeAnyQuery(t *testing.T) {
	defaults := readYAML(t, filepath.Join("..", "..", "charts", "monitoring-stack", "values.yaml"))
	cases := []struct {
		name    string
		run     func() error
		wantErr string
	}{
		{"ratio above 1", func() error {
			_, err := ForEnvironment(defaults, map[string]any{"alerts": map[string]any{"highErrorRate": map[string]any{"ratio": 2}}})
			return err
		}, "max 5xx ratio 2 must be in (0, 1]"},
		{"window not a duration", func() error {
			_, err := ForEnvironment(defaults, map[string]any{"alerts": map[string]any{"highErrorRate": map[string]any{"window": "soon"}}})
			return err
		}, "[alerts highErrorRate window]"},
		{"missing latency threshold", func() error {
			_, err := ForEnvironment(map[string]any{"alerts": map[string]any{"highErrorRate": map[string]any{"ratio": 0.1, "window": "1m"}}}, nil)
			return err
		}, "[alerts highLatency] is missing"},
		{"zero p95", func() error {
			_, err := New("http://127.0.0.1:9", Thresholds{MaxErrorRatio: 0.1, Window: time.Minute})
			return err
		}, "max p95 latency 0s must be positive"},
		{"service with a quote", func() error {
			g, err := New("http://127.0.0.1:9", Thresholds{MaxErrorRatio: 0.1, MaxP95: time.Second, Window: time.Minute})
			require.NoError(t, err)
			_, err = g.Check(t.Context(), Target{Service: `auth"} or vector(1) #`, Revision: "abc"})
			return err
		}, "is not a valid name"},
		{"empty revision", func() error {
			g, err := New("http://127.0.0.1:9", Thresholds{MaxErrorRatio: 0.1, MaxP95: time.Second, Window: time.Minute})
			require.NoError(t, err)
			_, err = g.Check(t.Context(), Target{Service: "auth-server"})
			return err
		}, `metric gate auth-server: revision "" is not a pod-template-hash`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// An unreachable Prometheus is retried within the budget, then reported as
// an error naming the target, never as a verdict.
func TestUnreachablePrometheusIsAnErrorWithinTheBudget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	g, err := New("http://"+addr, Thresholds{MaxErrorRatio: 0.05, MaxP95: time.Second, Window: time.Minute})
	require.NoError(t, err)
	g.Budget, g.Interval = 1500*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	v, err := g.Check(ctx, Target{Service: "auth-server", Revision: "5d8f7c9b4"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "metric gate auth-server@5d8f7c9b4")
	require.Contains(t, err.Error(), "connection refused")
	require.False(t, v.Passed())
	require.NoError(t, ctx.Err(), "Check must return within its own budget")
}

func TestVerdictNamesServiceMetricValueAndThreshold(t *testing.T) {
	v := Verdict{
		Target:   Target{Service: "authz-server", Revision: "6a7b8c9d1"},
		Requests: 240,
		Results: []Result{
			{Metric: MetricErrorRatio, Observed: 0.5, Threshold: 0.05, Status: Fail},
			{Metric: MetricP95Latency, Observed: 0.004, Threshold: 1, Status: Pass},
		},
	}
	require.False(t, v.Passed())
	require.True(t, v.Failed())
	require.Equal(t, "authz-server@6a7b8c9d1: FAIL (240 requests): 5xx_ratio 0.5 above threshold 0.05; p95_latency_seconds 0.004 within threshold 1", v.String())
}
