package charts

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/stackcheck"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

const (
	monChartDir   = "monitoring-stack"
	monNamespace  = "monitoring"
	monRelease    = "monitoring"
	envValuesFile = "monitoring-stack.values.yaml"
)

var monEnvironments = []string{"development", "staging", "production"}

// monEnvValues reads k8s/environments/<env>/monitoring-stack.values.yaml and lays over it what the
// operator adds at install: each image's digest (stand-ins here: real ones cannot be looked up
// without a registry), as chartstest.DeployValues does for the apps chart.
func monEnvValues(t testing.TB, env string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "k8s", "environments", env, envValuesFile))
	require.NoError(t, err, "environment %s", env)
	vals := map[string]any{}
	require.NoError(t, yaml.UnmarshalStrict(data, &vals), "environment %s: %s", env, envValuesFile)
	return values.Merge(vals, monStandInDigests())
}

// monStandInDigests is a stand-in digest for each monitoring image.
func monStandInDigests() map[string]any {
	out := map[string]any{}
	for _, c := range []string{"prometheus", "alertmanager", "grafana"} {
		out[c] = map[string]any{"image": map[string]any{"digest": fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(c)))}}
	}
	return out
}

// TestMonitoringStackImagesByDigest: where the environment demands digests, every container runs
// by digest (the tag stays beside it, for people); elsewhere a digest still wins when given.
func TestMonitoringStackImagesByDigest(t *testing.T) {
	for _, env := range monEnvironments {
		t.Run(env, func(t *testing.T) {
			res := monMustRender(t, monEnvValues(t, env))
			digests := monStandInDigests()
			n := 0
			for _, o := range res.Objects {
				var spec *corev1.PodSpec
				switch w := o.Typed.(type) {
				case *appsv1.StatefulSet:
					spec = &w.Spec.Template.Spec
				case *appsv1.Deployment:
					spec = &w.Spec.Template.Spec
				default:
					continue
				}
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					want := digests[c.Name].(map[string]any)["image"].(map[string]any)["digest"].(string)
					require.True(t, strings.HasSuffix(c.Image, "@"+want), "%s container %s: image %s is not by digest", o.Ref(), c.Name, c.Image)
					n++
				}
			}
			require.Equal(t, 3, n, "prometheus, alertmanager and grafana")
		})
	}
	// Without digests, development renders by tag; production refuses (TestMonitoringStackRejectsBadValues).
	data, err := os.ReadFile(filepath.Join("..", "k8s", "environments", "development", envValuesFile))
	require.NoError(t, err)
	dev := map[string]any{}
	require.NoError(t, yaml.UnmarshalStrict(data, &dev))
	res := monMustRender(t, dev)
	require.Equal(t, "quay.io/prometheus/prometheus:v"+promtest.PrometheusVersion,
		findObject(t, res.Objects, "StatefulSet", "prometheus").Typed.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0].Image)
}

// monRender renders the embedded chart exactly as an install would.
func monRender(t testing.TB, vals map[string]any) (*render.Result, error) {
	t.Helper()
	ch, err := render.LoadFS(MonitoringStack, monChartDir)
	require.NoError(t, err)
	return render.Render(t.Context(), render.Request{Chart: ch, Release: monRelease, Namespace: monNamespace, Values: vals})
}

func monMustRender(t testing.TB, vals map[string]any) *render.Result {
	t.Helper()
	res, err := monRender(t, vals)
	require.NoError(t, err)
	return res
}

// set assigns a value at a dotted path, creating maps on the way.
func set(vals map[string]any, path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	m := vals
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
	return vals
}

func monFiles(t testing.TB, res *render.Result) stackcheck.Files {
	t.Helper()
	f, err := stackcheck.Extract(res.Objects)
	require.NoError(t, err)
	return f
}

func findObject(t testing.TB, objs []render.Object, kind, nameSuffix string) render.Object {
	t.Helper()
	for _, o := range objs {
		if o.U.GetKind() == kind && strings.HasSuffix(o.U.GetName(), nameSuffix) {
			return o
		}
	}
	t.Fatalf("no %s named *%s rendered", kind, nameSuffix)
	return render.Object{}
}

func TestMonitoringStackLintStrict(t *testing.T) {
	cases := map[string]map[string]any{"chart defaults": {}}
	for _, env := range monEnvironments {
		cases[env] = monEnvValues(t, env)
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, render.Lint(monChartDir, monNamespace, vals))
		})
	}
}

func TestMonitoringStackRendersEveryEnvironment(t *testing.T) {
	wantAddress := map[string]string{"development": "10.10.0.10", "staging": "10.20.0.10", "production": "10.30.0.10"}
	wantHost := map[string]string{
		"development": "monitoring.dev.krgeobuk.com", "staging": "monitoring.staging.krgeobuk.com", "production": "monitoring.krgeobuk.com",
	}
	for _, env := range monEnvironments {
		t.Run(env, func(t *testing.T) {
			res := monMustRender(t, monEnvValues(t, env))
			vs := stackcheck.Check(res.Objects, stackcheck.Options{Namespace: monNamespace, AllowLiteralSecrets: env == "development"})
			require.NoError(t, vs.Err())

			files := monFiles(t, res)
			for _, port := range []string{"9100", "9104", "9121"} {
				require.Contains(t, files.Prometheus, wantAddress[env]+":"+port, "data-server exporter :%s", port)
			}
			require.Contains(t, files.Prometheus, `environment: "`+env+`"`)

			ing := findObject(t, res.Objects, "Ingress", "grafana").Typed.(*networkingv1.Ingress)
			require.Equal(t, wantHost[env], ing.Spec.Rules[0].Host)

			for _, o := range res.Objects {
				require.NotEqual(t, "Secret", o.U.GetKind(), "%s: the chart must never create a Secret", o.Ref())
			}
			require.Contains(t, res.Notes, wantHost[env])
		})
	}
	// Only development may carry a literal receiver secret.
	for _, env := range []string{"staging", "production"} {
		files := monFiles(t, monMustRender(t, monEnvValues(t, env)))
		require.NoError(t, stackcheck.CheckAlertmanager(env, files.Alertmanager, false).Err())
		require.Contains(t, files.Alertmanager, "_file:", "%s receivers read their secrets from files", env)
	}
}

// The seed's defect was an Ingress in namespace krgeobuk pointing at Grafana
// in monitoring. The Ingress must sit beside the Grafana Service it routes to.
func TestMonitoringStackIngressBesideGrafana(t *testing.T) {
	for _, env := range monEnvironments {
		t.Run(env, func(t *testing.T) {
			res := monMustRender(t, monEnvValues(t, env))
			ing := findObject(t, res.Objects, "Ingress", "grafana").Typed.(*networkingv1.Ingress)
			require.Equal(t, monNamespace, ing.Namespace)
			backend := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
			svc := findObject(t, res.Objects, "Service", backend.Name).Typed.(*corev1.Service)
			require.Equal(t, backend.Name, svc.Name)
			require.Equal(t, ing.Namespace, svc.Namespace)
			require.Equal(t, "grafana", svc.Spec.Selector["app.kubernetes.io/name"])
			require.Equal(t, "http", backend.Port.Name)
		})
	}
}

func TestMonitoringStackStoresMatchCatalog(t *testing.T) {
	data, err := MonitoringStack.ReadFile(monChartDir + "/values.yaml")
	require.NoError(t, err)
	var vals struct {
		DataServer struct {
			Stores []struct {
				Name, Engine string
				Port         int
			}
		} `json:"dataServer"`
	}
	require.NoError(t, yaml.Unmarshal(data, &vals))
	got := map[string]int{}
	for _, s := range vals.DataServer.Stores {
		got[s.Name] = s.Port
	}
	want := map[string]int{}
	for _, s := range catalog.Stores() {
		want[s.Name] = s.Port
	}
	require.Equal(t, want, got, "dataServer.stores must list catalog.Stores() with their ports")

	// Every store has a backup-missing rule and a probe target.
	files := monFiles(t, monMustRender(t, monEnvValues(t, "production")))
	for _, s := range catalog.Stores() {
		require.Contains(t, files.Rules["krgeobuk.rules.yaml"], `store="`+s.Name+`"`)
		require.Contains(t, files.Prometheus, `store: "`+s.Name+`"`)
	}
}

// The chart runs the versions the end-to-end test runs.
func TestMonitoringStackImagesMatchTestedVersions(t *testing.T) {
	res := monMustRender(t, monEnvValues(t, "production"))
	want := map[string]string{
		"prometheus":   "quay.io/prometheus/prometheus:v" + promtest.PrometheusVersion,
		"alertmanager": "quay.io/prometheus/alertmanager:v" + promtest.AlertmanagerVersion,
	}
	for _, o := range res.Objects {
		ss, ok := o.Typed.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		c := ss.Spec.Template.Spec.Containers[0]
		require.Equal(t, want[c.Name], strings.Split(c.Image, "@")[0], o.Ref())
		delete(want, c.Name)
	}
	require.Empty(t, want, "StatefulSets not rendered")
}

func TestMonitoringStackRejectsBadValues(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		path    string
		value   any
		wantErr string
	}{
		{"floating image tag", "production", "grafana.image.tag", "latest", "/grafana/image/tag"},
		{"unknown environment", "production", "environment", "prod", "/environment"},
		{"misspelt key", "production", "prometheus.retension", "30d", "retension"},
		{"literal slack URL in production", "production", "alertmanager.receivers",
			[]any{map[string]any{"name": "x", "slack": map[string]any{"channel": "#a", "apiURL": "https://hooks.slack.com/services/T/B/C"}}},
			"slack.apiURL is a literal secret"},
		{"literal webhook URL in staging", "staging", "alertmanager.receivers",
			[]any{map[string]any{"name": "x", "webhook": map[string]any{"url": "https://hooks.example.com/x"}}},
			"webhook.url is a literal secret"},
		{"literal password in production", "production", "alertmanager.receivers",
			[]any{map[string]any{"name": "x", "email": map[string]any{"to": "a@b.c", "from": "a@b.c", "smarthost": "smtp:587", "authPassword": "hunter2"}}},
			"email.authPassword is a literal secret"},
		{"literal gate outside development", "staging", "alertmanager.allowLiteralSecrets", true, "allowed only in development"},
		{"grafana admin without a Secret", "production", "grafana.admin.existingSecret", "", "/grafana/admin/existingSecret"},
		{"error ratio above 1", "production", "alerts.highErrorRate.ratio", 5, "/alerts/highErrorRate/ratio"},
		{"for window not a duration", "production", "alerts.storeDown.for", "soon", "/alerts/storeDown/for"},
		{"static discovery without targets", "production", "apps.discovery", "static", "staticConfigs"},
		{"store with unknown engine", "production", "dataServer.stores",
			[]any{map[string]any{"name": "x", "engine": "postgres", "port": 5432}}, "/dataServer/stores/0/engine"},
		{"missing digest where digests are demanded", "production", "prometheus.image.digest", "",
			`prometheus.image.digest is required: environment "production" deploys images by digest only (imagePolicy: digest); supply the digest of quay.io/prometheus/prometheus:v3.15.1`},
		{"malformed digest", "staging", "alertmanager.image.digest", "sha256:abc", "/alertmanager/image/digest"},
		{"staging may not allow tags", "staging", "imagePolicy", "tag", "/imagePolicy"},
		{"zero replicas", "production", "prometheus.replicas", 0, "/prometheus/replicas"},
		{"missing limits", "production", "alertmanager.resources.limits", nil, "limits"},
		{"pod label the chart owns", "production", "prometheus.podLabels", map[string]any{"app.kubernetes.io/name": "x"}, "/prometheus/podLabels"},
		{"pod annotation the chart owns", "production", "grafana.podAnnotations", map[string]any{"checksum/dashboards": "x"}, "/grafana/podAnnotations"},
		{"discovery RBAC switch not a boolean", "production", "prometheus.rbac.create", "no", "/prometheus/rbac/create"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vals := set(monEnvValues(t, tc.env), tc.path, tc.value)
			_, err := monRender(t, vals)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// Each rule of stackcheck, fed a broken release, names the object and the rule.
func TestMonitoringStackChecksCatchBrokenReleases(t *testing.T) {
	type mutate func(t *testing.T, objs []render.Object)
	configMap := func(objs []render.Object, component string) *corev1.ConfigMap {
		for _, o := range objs {
			if cm, ok := o.Typed.(*corev1.ConfigMap); ok && cm.Labels["app.kubernetes.io/name"] == component && !strings.HasSuffix(cm.Name, "-provisioning") {
				return cm
			}
		}
		t.Fatalf("no %s ConfigMap", component)
		return nil
	}
	podSpec := func(t *testing.T, objs []render.Object, kind, suffix string) *corev1.PodSpec {
		switch w := findObject(t, objs, kind, suffix).Typed.(type) {
		case *appsv1.StatefulSet:
			return &w.Spec.Template.Spec
		case *appsv1.Deployment:
			return &w.Spec.Template.Spec
		}
		t.Fatalf("%s %s is not a workload", kind, suffix)
		return nil
	}
	cases := []struct {
		name   string
		mutate mutate
		object string
		rule   string
	}{
		{"floating image", func(t *testing.T, objs []render.Object) {
			podSpec(t, objs, "Deployment", "grafana").Containers[0].Image = "grafana/grafana:latest"
		}, "Deployment/monitoring/monitoring-grafana", stackcheck.RulePinnedImage},
		{"writable root filesystem", func(t *testing.T, objs []render.Object) {
			podSpec(t, objs, "StatefulSet", "prometheus").Containers[0].SecurityContext.ReadOnlyRootFilesystem = nil
		}, "StatefulSet/monitoring/monitoring-prometheus", stackcheck.RuleRestricted},
		{"root pod", func(t *testing.T, objs []render.Object) {
			var root int64
			podSpec(t, objs, "StatefulSet", "alertmanager").SecurityContext.RunAsUser = &root
		}, "StatefulSet/monitoring/monitoring-alertmanager", stackcheck.RuleRestricted},
		{"no limits", func(t *testing.T, objs []render.Object) {
			podSpec(t, objs, "StatefulSet", "alertmanager").Containers[0].Resources.Limits = nil
		}, "StatefulSet/monitoring/monitoring-alertmanager", stackcheck.RuleResources},
		{"no readiness probe", func(t *testing.T, objs []render.Object) {
			podSpec(t, objs, "Deployment", "grafana").Containers[0].ReadinessProbe = nil
		}, "Deployment/monitoring/monitoring-grafana", stackcheck.RuleProbes},
		{"missing label", func(t *testing.T, objs []render.Object) {
			u := findObject(t, objs, "Service", "prometheus").U
			l := u.GetLabels()
			delete(l, "app.kubernetes.io/part-of")
			u.SetLabels(l)
		}, "Service/monitoring/monitoring-prometheus", stackcheck.RuleLabels},
		{"seed defect: Ingress in krgeobuk", func(t *testing.T, objs []render.Object) {
			o := findObject(t, objs, "Ingress", "grafana")
			o.U.SetNamespace("krgeobuk")
			o.Typed.(*networkingv1.Ingress).Namespace = "krgeobuk"
		}, "Ingress/krgeobuk/monitoring-grafana", stackcheck.RuleIngressBackend},
		{"Ingress outside the release namespace", func(t *testing.T, objs []render.Object) {
			findObject(t, objs, "Ingress", "grafana").U.SetNamespace("krgeobuk")
		}, "Ingress/krgeobuk/monitoring-grafana", stackcheck.RuleNamespace},
		{"Ingress to a missing port", func(t *testing.T, objs []render.Object) {
			ing := findObject(t, objs, "Ingress", "grafana").Typed.(*networkingv1.Ingress)
			ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name = "web"
		}, "Ingress/monitoring/monitoring-grafana", stackcheck.RuleIngressBackend},
		{"egress policy without DNS", func(t *testing.T, objs []render.Object) {
			np := findObject(t, objs, "NetworkPolicy", "grafana").Typed.(*networkingv1.NetworkPolicy)
			np.Spec.Egress = np.Spec.Egress[1:]
		}, "NetworkPolicy/monitoring/monitoring-grafana", stackcheck.RuleNetworkPolicyDNS},
		{"RBAC without endpointslices", func(t *testing.T, objs []render.Object) {
			cr := findObject(t, objs, "ClusterRole", "prometheus").Typed.(*rbacv1.ClusterRole)
			cr.Rules = cr.Rules[:1]
		}, "ClusterRole/monitoring-prometheus", stackcheck.RulePrometheusRBAC},
		{"unparsable prometheus.yml", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "prometheus")
			cm.Data["prometheus.yml"] = strings.Replace(cm.Data["prometheus.yml"], "scrape_interval: 30s", "scrape_interval: soon", 1)
		}, "ConfigMap/monitoring/monitoring-prometheus[prometheus.yml]", stackcheck.RulePrometheusConfig},
		{"rule file not loaded", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "prometheus")
			cm.Data["prometheus.yml"] = strings.Replace(cm.Data["prometheus.yml"], `"*.rules.yaml"`, `"alerts/*.yaml"`, 1)
		}, "ConfigMap/monitoring/monitoring-prometheus[prometheus.yml]", stackcheck.RulePrometheusConfig},
		{"broken alert expression", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "prometheus")
			cm.Data["krgeobuk.rules.yaml"] = strings.Replace(cm.Data["krgeobuk.rules.yaml"], "expr: redis_up{", "expr: redis_up{{", 1)
		}, "ConfigMap/monitoring/monitoring-prometheus[krgeobuk.rules.yaml]", stackcheck.RuleAlertRules},
		{"alert without severity", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "prometheus")
			cm.Data["krgeobuk.rules.yaml"] = strings.Replace(cm.Data["krgeobuk.rules.yaml"], "severity: warning", "team: infra", 1)
		}, "ConfigMap/monitoring/monitoring-prometheus[krgeobuk.rules.yaml] alert KrgeobukHighLatency", stackcheck.RuleAlertRules},
		{"route to an undefined receiver", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "alertmanager")
			cm.Data["alertmanager.yml"] = strings.Replace(cm.Data["alertmanager.yml"], `receiver: "slack-production"`, `receiver: "nobody"`, 1)
		}, "ConfigMap/monitoring/monitoring-alertmanager[alertmanager.yml]", stackcheck.RuleAlertmanagerConfig},
		{"literal Slack URL", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "alertmanager")
			cm.Data["alertmanager.yml"] = strings.Replace(cm.Data["alertmanager.yml"],
				`api_url_file: "/etc/alertmanager/secrets/receivers/slack-api-url"`, `api_url: "https://hooks.slack.com/services/T0/B0/XXXX"`, 1)
		}, "ConfigMap/monitoring/monitoring-alertmanager[alertmanager.yml]", stackcheck.RuleNoLiteralSecrets},
		{"dashboard without uid", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "grafana")
			cm.Data["krgeobuk-overview.json"] = strings.Replace(cm.Data["krgeobuk-overview.json"], `"uid": "krgeobuk-overview"`, `"uid": ""`, 1)
		}, "ConfigMap/monitoring/monitoring-grafana-dashboards[krgeobuk-overview.json]", stackcheck.RuleDashboard},
		{"dashboard expression that does not parse", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "grafana")
			cm.Data["krgeobuk-overview.json"] = strings.Replace(cm.Data["krgeobuk-overview.json"], `"expr": "redis_up{`, `"expr": "redis_up{{`, 1)
		}, "ConfigMap/monitoring/monitoring-grafana-dashboards[krgeobuk-overview.json]", stackcheck.RuleDashboard},
		{"panel on an unknown datasource", func(t *testing.T, objs []render.Object) {
			cm := configMap(objs, "grafana")
			cm.Data["krgeobuk-overview.json"] = strings.Replace(cm.Data["krgeobuk-overview.json"], `"uid": "prometheus"`, `"uid": "loki"`, 1)
		}, "ConfigMap/monitoring/monitoring-grafana-dashboards[krgeobuk-overview.json]", stackcheck.RuleDashboardDatasource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// With the discovery RBAC the chart renders for a cluster admin's own install; the
			// environments leave it to the bootstrap (TestBootstrapOwnsPrometheusDiscovery in k8s/).
			res := monMustRender(t, set(monEnvValues(t, "production"), "prometheus.rbac.create", true))
			require.NoError(t, stackcheck.Check(res.Objects, stackcheck.Options{Namespace: monNamespace}).Err(), "release is clean before the change")
			tc.mutate(t, res.Objects)
			err := stackcheck.Check(res.Objects, stackcheck.Options{Namespace: monNamespace}).Err()
			require.Error(t, err)
			require.Regexp(t, regexp.QuoteMeta(tc.object)+`.*: rule `+regexp.QuoteMeta(tc.rule)+`: `, err.Error())
		})
	}
}

// Every alert the chart ships has a promtool unit test, and they all pass
// against the rules as rendered with the chart's default thresholds.
func TestMonitoringStackPromtoolRuleTests(t *testing.T) {
	promtool, err := promtest.Promtool.Ensure(t.Context(), t.Logf)
	require.NoError(t, err, "build promtool (make test builds it first: make monitoring-tools)")

	files := monFiles(t, monMustRender(t, map[string]any{}))
	dir := t.TempDir()
	for name, content := range files.Rules {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	entries, err := MonitoringStack.ReadDir(monChartDir + "/tests")
	require.NoError(t, err)
	tested := map[string]bool{}
	var testFiles []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".test.yaml") {
			continue
		}
		data, err := MonitoringStack.ReadFile(monChartDir + "/tests/" + e.Name())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644))
		testFiles = append(testFiles, e.Name())
		var doc struct {
			Tests []struct {
				AlertRuleTests []struct {
					Alertname string `json:"alertname"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		require.NoError(t, yaml.Unmarshal(data, &doc), e.Name())
		for _, tc := range doc.Tests {
			for _, a := range tc.AlertRuleTests {
				tested[a.Alertname] = true
			}
		}
	}
	require.NotEmpty(t, testFiles, "no tests/*.test.yaml in the chart")
	sort.Strings(testFiles)

	for name, content := range files.Rules {
		alerts, err := stackcheck.AlertNames(content)
		require.NoError(t, err)
		for _, a := range alerts {
			require.True(t, tested[a], "alert %s in %s has no promtool unit test in charts/monitoring-stack/tests", a, name)
		}
	}
	out, err := promtest.Run(t.Context(), dir, promtool, append([]string{"test", "rules"}, testFiles...)...)
	require.NoError(t, err, "promtool test rules:\n%s", out)
}

// The real promtool accepts every environment's configuration and rules.
func TestMonitoringStackPromtoolChecksEveryEnvironment(t *testing.T) {
	promtool, err := promtest.Promtool.Ensure(t.Context(), t.Logf)
	require.NoError(t, err)
	for _, env := range monEnvironments {
		t.Run(env, func(t *testing.T) {
			files := monFiles(t, monMustRender(t, monEnvValues(t, env)))
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(files.Prometheus), 0o644))
			args := []string{"check", "rules"}
			for name, content := range files.Rules {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
				args = append(args, name)
			}
			// --syntax-only: the service-account files it names exist only in a pod.
			out, err := promtest.Run(t.Context(), dir, promtool, "check", "config", "--syntax-only", "prometheus.yml")
			require.NoError(t, err, "promtool check config:\n%s", out)
			out, err = promtest.Run(t.Context(), dir, promtool, args...)
			require.NoError(t, err, "promtool check rules:\n%s", out)
		})
	}
}

// The exporters the tests run are the ones the data server runs.
func TestMonitoringToolsMatchDataServerExporters(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "infrastructure", "docker-compose.monitoring.yml"))
	require.NoError(t, err)
	for _, image := range []string{
		"node-exporter:v" + promtest.NodeExporterVersion,
		"mysqld-exporter:v" + promtest.MysqldExporterVersion,
		"redis_exporter:v" + promtest.RedisExporterVersion,
	} {
		require.Contains(t, string(data), image, "infrastructure/docker-compose.monitoring.yml")
	}
}

// TestMonitoringStackHAReplicasSpreadAndSurviveDrains: a component run with more than one replica
// (production's Prometheus and Alertmanager) is HA only if its replicas sit on different nodes and
// a node drain may not evict them all at once: pod anti-affinity by hostname on the component's
// own pods, and a PodDisruptionBudget selecting them that keeps at least one running.
func TestMonitoringStackHAReplicasSpreadAndSurviveDrains(t *testing.T) {
	for _, env := range monEnvironments {
		t.Run(env, func(t *testing.T) {
			res := monMustRender(t, monEnvValues(t, env))
			pdbs := map[string]*policyv1.PodDisruptionBudget{}
			for _, o := range res.Objects {
				if p, ok := o.Typed.(*policyv1.PodDisruptionBudget); ok {
					pdbs[p.Spec.Selector.MatchLabels["app.kubernetes.io/name"]] = p
				}
			}
			multi := 0
			for _, o := range res.Objects {
				var replicas int32
				var tmpl corev1.PodTemplateSpec
				switch w := o.Typed.(type) {
				case *appsv1.StatefulSet:
					replicas, tmpl = *w.Spec.Replicas, w.Spec.Template
				case *appsv1.Deployment:
					replicas, tmpl = *w.Spec.Replicas, w.Spec.Template
				default:
					continue
				}
				component := tmpl.Labels["app.kubernetes.io/name"]
				if replicas < 2 {
					require.NotContains(t, pdbs, component, "%s: a PDB on a single replica blocks every drain", o.Ref())
					continue
				}
				multi++
				pdb := pdbs[component]
				require.NotNil(t, pdb, "%s runs %d replicas without a PodDisruptionBudget", o.Ref(), replicas)
				require.Equal(t, tmpl.Labels["app.kubernetes.io/instance"], pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"], pdb.Name)
				require.NotNil(t, pdb.Spec.MaxUnavailable, pdb.Name)
				require.Less(t, pdb.Spec.MaxUnavailable.IntValue(), int(replicas), "%s lets a drain evict every replica", pdb.Name)

				aff := tmpl.Spec.Affinity
				require.True(t, aff != nil && aff.PodAntiAffinity != nil, "%s runs %d replicas without pod anti-affinity", o.Ref(), replicas)
				terms := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
				require.Len(t, terms, 1, "%s: replicas on different nodes, required (see values.yaml for why)", o.Ref())
				require.Equal(t, "kubernetes.io/hostname", terms[0].TopologyKey)
				require.Equal(t, component, terms[0].LabelSelector.MatchLabels["app.kubernetes.io/name"])
				require.Equal(t, tmpl.Labels["app.kubernetes.io/instance"], terms[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"])
			}
			if env == "production" {
				require.GreaterOrEqual(t, multi, 2, "production runs Prometheus and Alertmanager in pairs")
				require.Contains(t, res.Notes, "prometheus: 2 replicas, required on different nodes, PodDisruptionBudget maxUnavailable 1.")
			}
		})
	}
}

// TestMonitoringStackServicesMatchCatalog: every API of pipelines/catalog has a
// KrgeobukAppAbsent rule and every SPA a KrgeobukSPAUnavailable one, so a new
// service cannot go unwatched.
func TestMonitoringStackServicesMatchCatalog(t *testing.T) {
	data, err := MonitoringStack.ReadFile(monChartDir + "/values.yaml")
	require.NoError(t, err)
	var vals struct {
		Apps struct {
			APIs []string `json:"apis"`
			SPAs []string `json:"spas"`
		} `json:"apps"`
	}
	require.NoError(t, yaml.Unmarshal(data, &vals))
	want := map[catalog.Kind][]string{}
	for _, s := range catalog.All() {
		want[s.Kind] = append(want[s.Kind], s.Name)
	}
	for _, l := range want {
		sort.Strings(l)
	}
	sort.Strings(vals.Apps.APIs)
	sort.Strings(vals.Apps.SPAs)
	require.Equal(t, want[catalog.KindAPI], vals.Apps.APIs, "apps.apis must list the catalog's APIs")
	require.Equal(t, want[catalog.KindSPA], vals.Apps.SPAs, "apps.spas must list the catalog's SPAs")

	rules := monFiles(t, monMustRender(t, monEnvValues(t, "production"))).Rules["krgeobuk.rules.yaml"]
	for kind, alert := range map[catalog.Kind]string{catalog.KindAPI: "KrgeobukAppAbsent", catalog.KindSPA: "KrgeobukSPAUnavailable"} {
		for _, name := range want[kind] {
			require.Regexp(t, `alert: `+alert+`\n(.*\n){1,5}?\s+service: `+name+`\n`, rules, "%s has no %s rule", name, alert)
		}
	}
}

// TestMonitoringStackPodLabelsAndAnnotations: each component's podLabels and podAnnotations reach
// its pod template beside the chart's own (the deploy tests put the simulated cluster's fault
// label there), and the StatefulSets use the Parallel pod management policy, without which a
// rollback of a pod that never became Ready stalls (TestStatefulSetStuckOnABrokenPodIsExplained).
func TestMonitoringStackPodLabelsAndAnnotations(t *testing.T) {
	vals := monEnvValues(t, "production")
	for _, c := range []string{"prometheus", "alertmanager", "grafana"} {
		set(vals, c+".podLabels", map[string]any{"example.com/team": c})
		set(vals, c+".podAnnotations", map[string]any{"example.com/note": c})
	}
	set(vals, "alertmanager.existingConfigSecret", "alertmanager-config")
	res := monMustRender(t, vals)
	for _, c := range []struct{ kind, name string }{{"StatefulSet", "prometheus"}, {"StatefulSet", "alertmanager"}, {"Deployment", "grafana"}} {
		var tmpl corev1.PodTemplateSpec
		switch w := findObject(t, res.Objects, c.kind, c.name).Typed.(type) {
		case *appsv1.StatefulSet:
			tmpl = w.Spec.Template
			require.Equal(t, appsv1.ParallelPodManagement, w.Spec.PodManagementPolicy, c.name)
		case *appsv1.Deployment:
			tmpl = w.Spec.Template
		}
		require.Equal(t, c.name, tmpl.Labels["example.com/team"], c.name)
		require.Equal(t, c.name, tmpl.Labels["app.kubernetes.io/name"], "%s: the chart's labels stay", c.name)
		require.Equal(t, c.name, tmpl.Annotations["example.com/note"], c.name)
	}
	require.NotContains(t, findObject(t, res.Objects, "StatefulSet", "alertmanager").Typed.(*appsv1.StatefulSet).Spec.Template.Annotations, "checksum/config",
		"no checksum of a config the chart does not render")
	require.Contains(t, findObject(t, res.Objects, "StatefulSet", "prometheus").Typed.(*appsv1.StatefulSet).Spec.Template.Annotations, "checksum/config")
}
