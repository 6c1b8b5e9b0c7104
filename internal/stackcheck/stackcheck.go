// Package stackcheck validates a rendered monitoring-stack release the way the
// programs that consume it would read it: Prometheus's own configuration,
// rule and PromQL parsers, Alertmanager's configuration loader and Grafana's
// dashboard shape, plus the Kubernetes conventions the platform requires
// (pinned images, restricted pods, probes, resources, labels, namespaces).
//
// Every finding is a Violation naming the object and the rule it breaks, so a
// failing test or a CI log says what to fix and where.
package stackcheck

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// Rule names, as they appear in violations.
const (
	RulePinnedImage         = "pinned-image"
	RuleRestricted          = policy.RuleRestricted
	RuleResources           = policy.RuleResources
	RuleProbes              = policy.RuleProbes
	RuleLabels              = "standard-labels"
	RuleNamespace           = "release-namespace"
	RuleIngressBackend      = policy.RuleIngressBackend
	RuleNetworkPolicyDNS    = policy.RuleEgressDNS
	RulePrometheusRBAC      = "prometheus-rbac"
	RulePrometheusConfig    = "prometheus-config"
	RuleAlertRules          = "alert-rules"
	RuleAlertmanagerConfig  = "alertmanager-config"
	RuleNoLiteralSecrets    = policy.RuleNoSecretLiterals
	RuleDashboard           = "grafana-dashboard"
	RuleDashboardDatasource = "grafana-datasource"
)

// Violation is one broken rule on one object.
type Violation struct {
	// Object is Kind/namespace/name, or a file inside a ConfigMap
	// ("ConfigMap/monitoring/x[prometheus.yml]").
	Object string
	Rule   string
	Detail string
}

func (v Violation) Error() string {
	return fmt.Sprintf("%s: rule %s: %s", v.Object, v.Rule, v.Detail)
}

// Violations is a list of findings; as an error it prints one per line.
type Violations []Violation

// Err returns nil when there is no violation, else an error listing them all.
func (vs Violations) Err() error {
	if len(vs) == 0 {
		return nil
	}
	errs := make([]error, len(vs))
	for i, v := range vs {
		errs[i] = v
	}
	return errors.Join(errs...)
}

// Files are the configuration files the release hands to its programs,
// taken from the rendered ConfigMaps.
type Files struct {
	// Prometheus is prometheus.yml; PrometheusSource names its ConfigMap key.
	Prometheus       string
	PrometheusSource string
	// Rules maps a rule file name (beside prometheus.yml) to its content.
	Rules map[string]string
	// Alertmanager is alertmanager.yml, empty when an existing Secret holds it.
	Alertmanager       string
	AlertmanagerSource string
	// Datasources is Grafana's datasource provisioning file.
	Datasources       string
	DatasourcesSource string
	// Dashboards maps a dashboard file name to its JSON.
	Dashboards       map[string]string
	DashboardsSource string
}

// Extract finds the configuration files in the rendered objects by the
// component label the chart sets on each ConfigMap. It fails when
// prometheus.yml is missing, since nothing else works without it.
func Extract(objs []render.Object) (Files, error) {
	f := Files{Rules: map[string]string{}, Dashboards: map[string]string{}}
	for _, o := range objs {
		cm, ok := o.Typed.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		ref := o.Ref()
		switch cm.Labels["app.kubernetes.io/name"] {
		case "prometheus":
			for k, v := range cm.Data {
				switch {
				case k == "prometheus.yml":
					f.Prometheus, f.PrometheusSource = v, ref+"[prometheus.yml]"
				case strings.HasSuffix(k, ".rules.yaml"):
					f.Rules[k] = v
				}
			}
		case "alertmanager":
			if v, ok := cm.Data["alertmanager.yml"]; ok {
				f.Alertmanager, f.AlertmanagerSource = v, ref+"[alertmanager.yml]"
			}
		case "grafana":
			if v, ok := cm.Data["datasources.yaml"]; ok {
				f.Datasources, f.DatasourcesSource = v, ref+"[datasources.yaml]"
			}
			for k, v := range cm.Data {
				if strings.HasSuffix(k, ".json") {
					f.Dashboards[k] = v
					f.DashboardsSource = ref
				}
			}
		}
	}
	if f.Prometheus == "" {
		return f, fmt.Errorf("no ConfigMap labelled app.kubernetes.io/name=prometheus holds prometheus.yml")
	}
	return f, nil
}

// Options tune Check to the environment being checked.
type Options struct {
	// Namespace is the release namespace every object must be in.
	Namespace string
	// AllowLiteralSecrets admits literal receiver URLs and passwords
	// (development only).
	AllowLiteralSecrets bool
}

// Check runs every rule over a rendered release and returns all findings,
// sorted by object and rule.
func Check(objs []render.Object, opts Options) Violations {
	var vs Violations
	vs = append(vs, CheckObjects(objs, opts.Namespace)...)
	files, err := Extract(objs)
	if err != nil {
		vs = append(vs, Violation{Object: "release", Rule: RulePrometheusConfig, Detail: err.Error()})
	} else {
		vs = append(vs, CheckPrometheus(files.PrometheusSource, files.Prometheus, files.Rules)...)
		if files.Alertmanager != "" {
			vs = append(vs, CheckAlertmanager(files.AlertmanagerSource, files.Alertmanager, opts.AllowLiteralSecrets)...)
		}
		uids, dsv := DatasourceUIDs(files.DatasourcesSource, files.Datasources)
		vs = append(vs, dsv...)
		for _, name := range sortedKeys(files.Dashboards) {
			vs = append(vs, CheckDashboard(files.DashboardsSource+"["+name+"]", []byte(files.Dashboards[name]), uids)...)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		if vs[i].Object != vs[j].Object {
			return vs[i].Object < vs[j].Object
		}
		return vs[i].Rule < vs[j].Rule
	})
	return vs
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
