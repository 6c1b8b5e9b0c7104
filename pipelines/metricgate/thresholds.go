package metricgate

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// ForEnvironment derives the gate's thresholds from the monitoring-stack
// values of an environment: the chart's defaults (charts/monitoring-stack
// values.yaml) overlaid with k8s/environments/<env>/monitoring-stack.values.yaml.
// A deploy passes the gate only if it would not trip the KrgeobukHighErrorRate
// and KrgeobukHighLatency alerts of that environment.
func ForEnvironment(chartDefaults, envValues map[string]any) (Thresholds, error) {
	vals := overlay(chartDefaults, envValues)
	ratio, err := number(vals, "alerts", "highErrorRate", "ratio")
	if err != nil {
		return Thresholds{}, err
	}
	p95, err := number(vals, "alerts", "highLatency", "p95Seconds")
	if err != nil {
		return Thresholds{}, err
	}
	window, err := duration(vals, "alerts", "highErrorRate", "window")
	if err != nil {
		return Thresholds{}, err
	}
	t := Thresholds{
		MaxErrorRatio: ratio,
		MaxP95:        time.Duration(p95 * float64(time.Second)),
		Window:        window,
	}
	return t, t.Validate()
}

func lookup(vals map[string]any, path ...string) (any, error) {
	var cur any = vals
	for i, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("monitoring values: %v is not a map", path[:i])
		}
		if cur, ok = m[p]; !ok {
			return nil, fmt.Errorf("monitoring values: %v is missing", path[:i+1])
		}
	}
	return cur, nil
}

func number(vals map[string]any, path ...string) (float64, error) {
	v, err := lookup(vals, path...)
	if err != nil {
		return 0, err
	}
	switch n := v.(type) {
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return 0, fmt.Errorf("monitoring values: %v is %T, want a number", path, v)
}

func duration(vals map[string]any, path ...string) (time.Duration, error) {
	v, err := lookup(vals, path...)
	if err != nil {
		return 0, err
	}
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("monitoring values: %v is %T, want a duration string", path, v)
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("monitoring values: %v: %w", path, err)
	}
	return time.Duration(d), nil
}

// overlay merges top over base, maps recursively, without changing either.
func overlay(base, top map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		if tm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = overlay(bm, tm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
