package policy

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// applyVerbs are what `helm upgrade --install` and a rollback need on every kind they manage.
var applyVerbs = []string{"get", "list", "create", "update", "patch", "delete"}

// DeployerCanApply checks that role grants the deployer every verb Helm needs on every kind in
// objs, plus Helm's release records (secrets). A missing grant would fail a deploy halfway.
func DeployerCanApply(role *rbacv1.Role, objs []render.Object) []Violation {
	need := map[string]string{"secrets": "Helm release records"} // "group/resource" -> why
	for _, o := range objs {
		gvr, _ := meta.UnsafeGuessKindToResource(o.GVK())
		key := gvr.Resource
		if gvr.Group != "" {
			key = gvr.Group + "/" + key
		}
		if _, seen := need[key]; !seen {
			need[key] = o.Ref()
		}
	}
	keys := make([]string, 0, len(need))
	for k := range need {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ref := fmt.Sprintf("Role/%s/%s", role.Namespace, role.Name)
	var out []Violation
	for _, k := range keys {
		group, resource, ok := strings.Cut(k, "/")
		if !ok {
			group, resource = "", k
		}
		var missing []string
		for _, verb := range applyVerbs {
			if !Allows(role.Rules, group, resource, verb) {
				missing = append(missing, verb)
			}
		}
		if len(missing) > 0 {
			out = append(out, violation(RuleDeployerRBAC, ref, "cannot %s %s (needed for %s)",
				strings.Join(missing, "/"), displayResource(group, resource), need[k]))
		}
	}
	return out
}

func displayResource(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

// Allows reports whether any of rules grants verb on resource in API group (wildcards honoured).
func Allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if contains(r.APIGroups, group) && contains(r.Resources, resource) && contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s || v == "*" {
			return true
		}
	}
	return false
}
