package stackcheck

import (
	"fmt"
	"sort"

	amconfig "github.com/prometheus/alertmanager/config"
	"sigs.k8s.io/yaml"
)

// secretKeys are receiver fields that carry a credential or a secret URL;
// each has a *_file twin that reads it from a mounted Secret instead.
var secretKeys = []string{"url", "api_url", "auth_password", "auth_secret", "routing_key", "service_key", "api_key", "bot_token", "token", "password"}

// CheckAlertmanager loads alertmanager.yml with Alertmanager's own loader and,
// unless literals are allowed (development), refuses any receiver field that
// holds a secret inline instead of reading it from a file.
func CheckAlertmanager(source, content string, allowLiterals bool) Violations {
	if _, err := amconfig.Load(content); err != nil {
		return Violations{{source, RuleAlertmanagerConfig, err.Error()}}
	}
	if allowLiterals {
		return nil
	}
	var doc struct {
		Receivers []map[string]any `json:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(content), &doc); err != nil {
		return Violations{{source, RuleAlertmanagerConfig, err.Error()}}
	}
	var vs Violations
	for _, r := range doc.Receivers {
		name, _ := r["name"].(string)
		keys := sortedKeys(r)
		for _, kind := range keys {
			cfgs, ok := r[kind].([]any)
			if !ok {
				continue
			}
			for i, c := range cfgs {
				m, _ := c.(map[string]any)
				for _, k := range secretKeys {
					if v, ok := m[k]; ok && fmt.Sprint(v) != "" {
						vs = append(vs, Violation{source, RuleNoLiteralSecrets, fmt.Sprintf(
							"receiver %s %s[%d].%s is a literal secret; use %s_file with a mounted Secret", name, kind, i, k, k)})
					}
				}
			}
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Detail < vs[j].Detail })
	return vs
}
