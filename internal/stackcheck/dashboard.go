package stackcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// grafanaVars are Grafana's built-in interval variables, replaced by fixed
// values so that a panel query becomes plain PromQL.
var grafanaVars = strings.NewReplacer(
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
	"${__interval}", "30s", "$__interval", "30s",
	"${__range}", "1h", "$__range", "1h",
)

var dashboardUID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

// PromQL expands Grafana's interval variables in a panel expression.
func PromQL(expr string) string { return grafanaVars.Replace(expr) }

// Query is one panel target of a dashboard.
type Query struct {
	Panel string
	RefID string
	Expr  string
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"`
}

type target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

func decodeDashboard(data []byte) (dashboard, error) {
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("not JSON: %w", err)
	}
	return d, nil
}

// flatten returns the panels with collapsed rows opened up.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, flatten(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Queries lists every panel target of a dashboard, Grafana variables expanded.
func Queries(data []byte) ([]Query, error) {
	d, err := decodeDashboard(data)
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, p := range flatten(d.Panels) {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: PromQL(t.Expr)})
		}
	}
	return out, nil
}

// CheckDashboard checks what Grafana needs to show a provisioned dashboard:
// a title, a stable uid, panels that each name a provisioned Prometheus
// datasource and carry targets whose expressions parse as PromQL.
func CheckDashboard(source string, data []byte, datasourceUIDs map[string]bool) Violations {
	d, err := decodeDashboard(data)
	if err != nil {
		return Violations{{source, RuleDashboard, err.Error()}}
	}
	var vs Violations
	add := func(rule, format string, args ...any) {
		vs = append(vs, Violation{source, rule, fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(d.Title) == "" {
		add(RuleDashboard, "title is empty")
	}
	if !dashboardUID.MatchString(d.UID) {
		add(RuleDashboard, "uid %q must be 1-40 characters of letters, digits, - and _", d.UID)
	}
	if d.SchemaVersion == 0 {
		add(RuleDashboard, "schemaVersion is missing")
	}
	panels := flatten(d.Panels)
	if len(panels) == 0 {
		add(RuleDashboard, "has no panels")
	}
	ids := map[int]bool{}
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] {
			add(RuleDashboard, "%s: duplicate panel id", name)
		}
		ids[p.ID] = true
		if p.Datasource == nil || p.Datasource.UID == "" {
			add(RuleDashboardDatasource, "%s has no datasource", name)
		} else if p.Datasource.Type != "prometheus" || !datasourceUIDs[p.Datasource.UID] {
			add(RuleDashboardDatasource, "%s uses datasource %s/%s, which is not a provisioned Prometheus datasource", name, p.Datasource.Type, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			add(RuleDashboard, "%s has no targets", name)
		}
		for _, t := range p.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				add(RuleDashboard, "%s target %s has no expr", name, t.RefID)
				continue
			}
			if _, err := promql.ParseExpr(PromQL(t.Expr)); err != nil {
				add(RuleDashboard, "%s target %s: expr does not parse: %v", name, t.RefID, err)
			}
			if t.Datasource != nil && !datasourceUIDs[t.Datasource.UID] {
				add(RuleDashboardDatasource, "%s target %s uses datasource uid %q, which is not provisioned", name, t.RefID, t.Datasource.UID)
			}
		}
	}
	return vs
}

// DatasourceUIDs reads Grafana's datasource provisioning file and returns the
// uids of its Prometheus datasources.
func DatasourceUIDs(source, content string) (map[string]bool, Violations) {
	var doc struct {
		Datasources []struct {
			UID  string `json:"uid"`
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(content), &doc); err != nil {
		return nil, Violations{{source, RuleDashboardDatasource, err.Error()}}
	}
	uids := map[string]bool{}
	for _, ds := range doc.Datasources {
		if ds.Type == "prometheus" && ds.UID != "" && ds.URL != "" {
			uids[ds.UID] = true
		}
	}
	if len(uids) == 0 {
		return uids, Violations{{source, RuleDashboardDatasource, "no Prometheus datasource with a uid and a url is provisioned"}}
	}
	return uids, nil
}
