package stackcheck

import (
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	// Registers kubernetes_sd_configs, which the chart's jobs use.
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var (
	quiet   = slog.New(slog.DiscardHandler)
	promql  = parser.NewParser(parser.Options{})
	severit = map[string]bool{"critical": true, "warning": true, "info": true}
)

// CheckPrometheus loads prometheus.yml with Prometheus's own loader, makes
// sure its rule_files globs pick up every rule file shipped beside it, and
// checks each rule file with CheckRules.
func CheckPrometheus(source, config string, rules map[string]string) Violations {
	var vs Violations
	cfg, err := promconfig.Load(config, quiet)
	if err != nil {
		return Violations{{source, RulePrometheusConfig, err.Error()}}
	}
	names := sortedKeys(rules)
	for _, name := range names {
		matched := false
		for _, glob := range cfg.RuleFiles {
			if ok, _ := path.Match(glob, name); ok {
				matched = true
			}
		}
		if !matched {
			vs = append(vs, Violation{source, RulePrometheusConfig, fmt.Sprintf("rule file %s is not matched by rule_files %v", name, cfg.RuleFiles)})
		}
	}
	if len(names) == 0 {
		vs = append(vs, Violation{source, RulePrometheusConfig, "no rule file is shipped beside prometheus.yml"})
	}
	// Rule files sit beside prometheus.yml in the same ConfigMap.
	base := strings.TrimSuffix(source, "[prometheus.yml]")
	for _, name := range names {
		vs = append(vs, CheckRules(base+"["+name+"]", rules[name])...)
	}
	return vs
}

// CheckRules parses a rule file with Prometheus's rulefmt (which also parses
// every expression and template) and enforces the house conventions: every
// alert has a severity label and a summary annotation.
func CheckRules(source, content string) Violations {
	groups, errs := rulefmt.Parse([]byte(content), false, model.UTF8Validation, promql, quiet)
	if len(errs) > 0 {
		vs := make(Violations, 0, len(errs))
		for _, err := range errs {
			vs = append(vs, Violation{source, RuleAlertRules, err.Error()})
		}
		return vs
	}
	var vs Violations
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			obj := fmt.Sprintf("%s alert %s", source, r.Alert)
			if !severit[r.Labels["severity"]] {
				vs = append(vs, Violation{obj, RuleAlertRules, fmt.Sprintf("severity label %q is not one of critical, warning, info", r.Labels["severity"])})
			}
			if r.Annotations["summary"] == "" {
				vs = append(vs, Violation{obj, RuleAlertRules, "summary annotation is missing"})
			}
		}
	}
	if alerts == 0 {
		vs = append(vs, Violation{source, RuleAlertRules, "no alerting rule"})
	}
	return vs
}

// AlertNames lists the distinct alert names in a rule file, sorted.
func AlertNames(content string) ([]string, error) {
	groups, errs := rulefmt.Parse([]byte(content), false, model.UTF8Validation, promql, quiet)
	if len(errs) > 0 {
		return nil, fmt.Errorf("rules: %w", errs[0])
	}
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				seen[r.Alert] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
