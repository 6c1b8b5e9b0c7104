package environment_test

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
)

func TestEmbeddedEnvironmentsLoad(t *testing.T) {
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	require.Equal(t, []string{"development", "production", "staging"}, names)

	wantPolicy := map[string]string{"development": "tag", "staging": "digest", "production": "digest"}
	for _, name := range names {
		env, err := environment.Load(k8s.Environments, name)
		require.NoError(t, err, name)
		require.Equal(t, name, env.Name)
		require.Equal(t, "krgeobuk", env.Namespace)
		require.Equal(t, "krgeobuk-apps", env.Release)
		require.Equal(t, &environment.Placement{Namespace: "monitoring", Release: "monitoring"}, env.Monitoring, name)
		require.NotNil(t, env.MonitoringValues, name)
		require.Equal(t, wantPolicy[name], env.Values["global"].(map[string]any)["imagePolicy"], name)
		require.Positive(t, env.Gates.RolloutTimeout)
		require.Positive(t, env.LockTTL)
	}
}

// analysis: is off where it is absent (development) and on in staging and
// production, thresholds left to the monitoring alerts; staging runs a new
// image as a canary of one pod and then of half the stable pods first
// (production has no room for a canary at peak yet: k8s/capacity_test.go).
func TestEmbeddedEnvironmentsAnalysis(t *testing.T) {
	canary := &environment.Canary{Steps: []environment.CanaryStep{{Pods: 1}, {Percent: 50}}, MaxRatioIncrease: 0.02, MaxP95Factor: 2}
	want := map[string]*environment.Analysis{
		"development": nil,
		"staging":     {Duration: 2 * time.Minute, Interval: 15 * time.Second, MinRequests: 20, Canary: canary},
		"production":  {Duration: 5 * time.Minute, Interval: 30 * time.Second, MinRequests: 100},
	}
	for name, w := range want {
		env, err := environment.Load(k8s.Environments, name)
		require.NoError(t, err, name)
		require.Equal(t, w, env.Analysis, name)
	}
}

func TestAnalysisSettings(t *testing.T) {
	tests := []struct {
		name, block string
		want        *environment.Analysis
		wantErr     string
	}{
		{name: "absent is off", block: "", want: nil},
		{name: "thresholds given", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, maxErrorRatio: 0.01, maxP95: 250ms}\n",
			want: &environment.Analysis{Duration: time.Minute, Interval: 10 * time.Second, MinRequests: 5, MaxErrorRatio: 0.01, MaxP95: 250 * time.Millisecond}},
		{name: "no duration", block: "analysis: {interval: 10s, minRequests: 5}\n", wantErr: "analysis.duration must be a positive duration"},
		{name: "interval not shorter", block: "analysis: {duration: 10s, interval: 10s, minRequests: 5}\n",
			wantErr: "analysis.interval 10s must be shorter than analysis.duration 10s"},
		{name: "interval under a second", block: "analysis: {duration: 10s, interval: 100ms, minRequests: 5}\n",
			wantErr: "analysis.interval 100ms must be at least 1s"},
		{name: "window holding the lock for an hour", block: "analysis: {duration: 1h, interval: 1m, minRequests: 5}\n",
			wantErr: "analysis.duration 1h0m0s is longer than 30m0s"},
		{name: "no minRequests", block: "analysis: {duration: 1m, interval: 10s}\n", wantErr: "analysis.minRequests must be at least 1"},
		{name: "ratio above 1", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, maxErrorRatio: 5}\n",
			wantErr: "analysis.maxErrorRatio 5 must be in (0, 1]"},
		{name: "zero ratio", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, maxErrorRatio: 0}\n",
			wantErr: "analysis.maxErrorRatio 0 must be in (0, 1]"},
		{name: "negative p95", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, maxP95: -1s}\n",
			wantErr: "analysis.maxP95 must be a positive duration"},
		{name: "misspelt key", block: "analysis: {duration: 1m, interval: 10s, minRequest: 5}\n", wantErr: `unknown field "minRequest"`},
		{name: "canary of pods and shares", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [2, 25%, 100%], maxRatioIncrease: 0, maxP95Factor: 1.5}}\n",
			want: &environment.Analysis{Duration: time.Minute, Interval: 10 * time.Second, MinRequests: 5,
				Canary: &environment.Canary{Steps: []environment.CanaryStep{{Pods: 2}, {Percent: 25}, {Percent: 100}}, MaxP95Factor: 1.5}}},
		{name: "canary without steps", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [], maxRatioIncrease: 0.01, maxP95Factor: 2}}\n",
			wantErr: "analysis.canary.steps must list at least one step"},
		{name: "canary step of no pods", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [0], maxRatioIncrease: 0.01, maxP95Factor: 2}}\n",
			wantErr: "analysis.canary.steps[0] must be at least one pod or a share above 0%"},
		{name: "canary step above the stable pods", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [150%], maxRatioIncrease: 0.01, maxP95Factor: 2}}\n",
			wantErr: "analysis.canary.steps[0] 150% is more than the stable pods"},
		{name: "canary step not a count", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [half], maxRatioIncrease: 0.01, maxP95Factor: 2}}\n",
			wantErr: `analysis.canary.steps[0]: "half" is neither a pod count nor a share`},
		{name: "canary step a fraction of a pod", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [1.5], maxRatioIncrease: 0.01, maxP95Factor: 2}}\n",
			wantErr: "analysis.canary.steps[0]: 1.5 is not a whole number of pods"},
		{name: "canary without its comparison", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [1]}}\n",
			wantErr: "analysis.canary.maxP95Factor must be set, at least 1"},
		{name: "canary p95 factor under 1", block: "analysis: {duration: 1m, interval: 10s, minRequests: 5, canary: {steps: [1], maxRatioIncrease: 0.01, maxP95Factor: 0.5}}\n",
			wantErr: "analysis.canary.maxP95Factor must be set, at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := environment.Load(envFS(goodSettings+tt.block, "a: 1\n"), "dev")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, env.Analysis)
		})
	}
}

const goodSettings = `name: dev
namespace: krgeobuk
release: krgeobuk-apps
gates: {rolloutTimeout: 2m, readinessTimeout: 30s, unschedulableGrace: 10s}
lock: {ttl: 30s}
`

func envFS(settings, values string) fstest.MapFS {
	fsys := fstest.MapFS{"environments/dev/environment.yaml": {Data: []byte(settings)}}
	if values != "" {
		fsys["environments/dev/krgeobuk-apps.values.yaml"] = &fstest.MapFile{Data: []byte(values)}
	}
	return fsys
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		fsys    fstest.MapFS
		wantErr string
	}{
		{name: "good", env: "dev", fsys: envFS(goodSettings, "global: {imagePolicy: tag}\n")},
		{name: "unknown environment", env: "qa", fsys: envFS(goodSettings, "a: 1\n"),
			wantErr: `environment "qa": unknown (known: [dev])`},
		{name: "path traversal refused", env: "../dev", fsys: envFS(goodSettings, "a: 1\n"),
			wantErr: "not a valid environment name"},
		{name: "unknown field", env: "dev", fsys: envFS(goodSettings+"rollbackTimeout: 1m\n", "a: 1\n"),
			wantErr: `unknown field "rollbackTimeout"`},
		{name: "name differs from folder", env: "dev", fsys: envFS(
			"name: prod\n"+goodSettings[len("name: dev\n"):], "a: 1\n"),
			wantErr: `name "prod" does not match its folder "dev"`},
		{name: "bad duration", env: "dev", fsys: envFS(
			goodSettings[:len(goodSettings)-len("lock: {ttl: 30s}\n")]+"lock: {ttl: soon}\n", "a: 1\n"),
			wantErr: `invalid duration "soon"`},
		{name: "missing duration", env: "dev", fsys: envFS(
			goodSettings[:len(goodSettings)-len("lock: {ttl: 30s}\n")], "a: 1\n"),
			wantErr: "lock.ttl must be a positive duration"},
		{name: "lock that blocks others for minutes", env: "dev", fsys: envFS(
			goodSettings[:len(goodSettings)-len("lock: {ttl: 30s}\n")]+"lock: {ttl: 10m}\n", "a: 1\n"),
			wantErr: "lock.ttl 10m0s is outside 6s..2m0s"},
		{name: "lock renewed faster than the API answers", env: "dev", fsys: envFS(
			goodSettings[:len(goodSettings)-len("lock: {ttl: 30s}\n")]+"lock: {ttl: 3s}\n", "a: 1\n"),
			wantErr: "lock.ttl 3s is outside 6s..2m0s"},
		{name: "bad namespace", env: "dev", fsys: envFS(
			"name: dev\nnamespace: Krgeobuk_NS\n"+goodSettings[len("name: dev\nnamespace: krgeobuk\n"):], "a: 1\n"),
			wantErr: `namespace "Krgeobuk_NS" is not a DNS label`},
		{name: "bad monitoring namespace", env: "dev", fsys: envFS(goodSettings+"monitoring: {namespace: Mon, release: monitoring}\n", "a: 1\n"),
			wantErr: `monitoring.namespace "Mon" is not a DNS label`},
		{name: "monitoring without a release", env: "dev", fsys: envFS(goodSettings+"monitoring: {namespace: monitoring}\n", "a: 1\n"),
			wantErr: `monitoring.release "" is not a valid Helm release name`},
		{name: "monitoring as the apps' release", env: "dev", fsys: envFS(goodSettings+"monitoring: {namespace: krgeobuk, release: krgeobuk-apps}\n", "a: 1\n"),
			wantErr: `monitoring.release "krgeobuk-apps" in namespace "krgeobuk" is the apps' release`},
		{name: "missing values file", env: "dev", fsys: envFS(goodSettings, ""),
			wantErr: "environments/dev/krgeobuk-apps.values.yaml: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := environment.Load(tt.fsys, tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, env)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 2*time.Minute, env.Gates.RolloutTimeout)
			require.Equal(t, 30*time.Second, env.LockTTL)
			require.Equal(t, environment.DefaultControllerGrace, env.Gates.ControllerGrace, "unset: the default")
			require.Equal(t, "tag", env.Values["global"].(map[string]any)["imagePolicy"])
			require.Nil(t, env.MonitoringValues)
			require.Nil(t, env.Monitoring, "no monitoring: block, no monitoring release")
		})
	}
}

func TestBudgetOverrides(t *testing.T) {
	env, err := environment.Load(envFS(goodSettings, "a: 1\n"), "dev")
	require.NoError(t, err)
	require.Equal(t, budget.Defaults(), env.Budgets, "no budgets: every default")

	env, err = environment.Load(envFS(goodSettings+"budgets: {apiRead: 45s, readinessInterval: 5s}\n", "a: 1\n"), "dev")
	require.NoError(t, err)
	want := budget.Defaults()
	want.APIRead, want.ReadinessInterval = 45*time.Second, 5*time.Second
	require.Equal(t, want, env.Budgets, "overrides replace only what they name")

	_, err = environment.Load(envFS(goodSettings+"budgets: {dryRun: -1s}\n", "a: 1\n"), "dev")
	require.ErrorContains(t, err, "budgets.dryRun must not be negative")
	_, err = environment.Load(envFS(goodSettings+"budgets: {apiReads: 1s}\n", "a: 1\n"), "dev")
	require.ErrorContains(t, err, `unknown field "apiReads"`)

	prod, err := environment.Load(k8s.Environments, "production")
	require.NoError(t, err)
	require.Equal(t, time.Minute, prod.Budgets.Registry, "production waits longer for its registry")
}

// A step's canary size beside the stable pods: a share is rounded up and
// is never less than one pod.
func TestCanaryStepReplicas(t *testing.T) {
	for _, tt := range []struct {
		step         environment.CanaryStep
		stable, want int
	}{
		{environment.CanaryStep{Pods: 1}, 4, 1},
		{environment.CanaryStep{Pods: 3}, 2, 3},
		{environment.CanaryStep{Percent: 50}, 2, 1},
		{environment.CanaryStep{Percent: 50}, 3, 2},
		{environment.CanaryStep{Percent: 10}, 2, 1},
		{environment.CanaryStep{Percent: 100}, 4, 4},
	} {
		require.Equal(t, tt.want, tt.step.Replicas(tt.stable), "%s of %d", tt.step, tt.stable)
	}
}

// staging and production require signed images, each with its committed
// public key; development requires none.
func TestEmbeddedEnvironmentsSigning(t *testing.T) {
	for name, required := range map[string]bool{"development": false, "staging": true, "production": true} {
		env, err := environment.Load(k8s.Environments, name)
		require.NoError(t, err, name)
		if !required {
			require.Nil(t, env.Signing, name)
			continue
		}
		require.NotNil(t, env.Signing, name)
		require.True(t, env.Signing.Required, name)
		require.Len(t, env.Signing.Keys, 1, name)
		require.Equal(t, "cosign.pub", env.Signing.Keys[0].File)
		require.Contains(t, string(env.Signing.Keys[0].PEM), "BEGIN PUBLIC KEY")
	}
}

func TestSigningSettings(t *testing.T) {
	pubPEM, err := k8s.Environments.ReadFile("environments/staging/cosign.pub")
	require.NoError(t, err)
	pub := string(pubPEM)
	base := "name: dev\nnamespace: apps\nrelease: apps\ngates: {rolloutTimeout: 1m, readinessTimeout: 1m, unschedulableGrace: 10s}\nlock: {ttl: 30s}\n"
	tests := []struct {
		name, block string
		files       map[string]string
		wantKeys    []string
		wantErr     string
	}{
		{name: "two keys while rotating", block: "signing: {required: true, keys: [a.pub, b.pub]}", files: map[string]string{"a.pub": pub, "b.pub": pub}, wantKeys: []string{"a.pub", "b.pub"}},
		{name: "required without keys", block: "signing: {required: true}", wantErr: "signing.required needs at least one public key"},
		{name: "three keys", block: "signing: {required: true, keys: [a.pub, b.pub, c.pub]}", files: map[string]string{"a.pub": pub, "b.pub": pub, "c.pub": pub}, wantErr: "lists 3 keys, at most 2"},
		{name: "a path out of the folder", block: "signing: {required: true, keys: [../staging/cosign.pub]}", wantErr: `"../staging/cosign.pub" must be a file name beside environment.yaml`},
		{name: "missing file", block: "signing: {required: true, keys: [a.pub]}", wantErr: "signing.keys: open environments/dev/a.pub"},
		{name: "a private key", block: "signing: {required: true, keys: [a.pub]}", files: map[string]string{"a.pub": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"}, wantErr: "a.pub holds a private key (PRIVATE KEY): only the public key belongs here"},
		{name: "not PEM", block: "signing: {required: true, keys: [a.pub]}", files: map[string]string{"a.pub": "ssh-ed25519 AAAA"}, wantErr: "a.pub is not PEM"},
		{name: "unknown field", block: "signing: {required: true, key: a.pub}", wantErr: `unknown field "key"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := envFS(base+tc.block+"\n", "a: 1\n")
			for f, data := range tc.files {
				fsys["environments/dev/"+f] = &fstest.MapFile{Data: []byte(data)}
			}
			env, err := environment.Load(fsys, "dev")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "c2VjcmV0LWtleS1ieXRlcw", "a private key is never echoed")
				return
			}
			require.NoError(t, err)
			var got []string
			for _, k := range env.Signing.Keys {
				got = append(got, k.File)
			}
			require.Equal(t, tc.wantKeys, got)
		})
	}
}
