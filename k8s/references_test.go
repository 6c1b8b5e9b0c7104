package k8s_test

import (
	"fmt"
	"os"
	"path"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// renderMonitoring renders the monitoring chart with an environment's values, as a deploy would.
func renderMonitoring(t *testing.T, env string, overrides ...map[string]any) *render.Result {
	t.Helper()
	res, _ := chartstest.MustRenderMonitoring(t, env, overrides...)
	return res
}

// podSpec returns the pod template of a workload, or nil.
func podSpec(o render.Object) *corev1.PodSpec {
	switch w := o.Typed.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &w.Spec.Template.Spec
	}
	return nil
}

// secretRefs lists "namespace/name" → keys (empty: the whole Secret) of every Secret a pod reads.
func secretRefs(ns string, spec *corev1.PodSpec, into map[string][]string) {
	add := func(name, key string) {
		ref := ns + "/" + name
		if key != "" {
			into[ref] = append(into[ref], key)
		} else if _, ok := into[ref]; !ok {
			into[ref] = nil
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			add(v.Secret.SecretName, "")
			for _, it := range v.Secret.Items {
				add(v.Secret.SecretName, it.Key)
			}
		}
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				add(e.SecretRef.Name, "")
			}
		}
	}
}

// documentedSecrets reads k8s/secrets/secrets.template.yaml: "namespace/name" → keys.
func documentedSecrets(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("secrets/secrets.template.yaml")
	require.NoError(t, err)
	tmpl, err := render.Decode(string(data))
	require.NoError(t, err)
	documented := map[string][]string{}
	for _, o := range tmpl {
		s := o.Typed.(*corev1.Secret)
		for k := range s.StringData {
			documented[s.Namespace+"/"+s.Name] = append(documented[s.Namespace+"/"+s.Name], k)
		}
	}
	return documented
}

// referenceViolations names everything the rendered objs take for granted that environment
// name's bootstrap boot does not create and k8s/secrets (documented) does not tell the operator to.
func referenceViolations(t *testing.T, name string, boot, objs []render.Object, documented map[string][]string) []string {
	t.Helper()
	issuers, namespaces := map[string]bool{}, map[string]bool{}
	for _, o := range boot {
		switch o.U.GetKind() {
		case "ClusterIssuer":
			issuers[o.U.GetName()] = true
		case "Namespace":
			namespaces[o.U.GetName()] = true
		}
	}
	var bad []string
	rendered := map[string]bool{}
	refs := map[string][]string{}
	hosts := map[string]string{}
	for _, o := range objs {
		if ns := o.U.GetNamespace(); ns != "" && !namespaces[ns] {
			bad = append(bad, fmt.Sprintf("%s: namespace %q is not created by k8s/environments/%s", o.Ref(), ns, name))
		}
		if o.U.GetKind() == "Secret" {
			rendered[o.U.GetNamespace()+"/"+o.U.GetName()] = true
		}
		if spec := podSpec(o); spec != nil {
			secretRefs(o.U.GetNamespace(), spec, refs)
		}
		ing, ok := o.Typed.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		if is := ing.Annotations["cert-manager.io/cluster-issuer"]; !issuers[is] {
			bad = append(bad, fmt.Sprintf("%s: cluster-issuer %q is not created by k8s/environments/%s (it creates %v); the certificate is never issued", o.Ref(), is, name, keys(issuers)))
		}
		var tlsHosts []string
		for _, tls := range ing.Spec.TLS {
			tlsHosts = append(tlsHosts, tls.Hosts...)
		}
		for _, r := range ing.Spec.Rules {
			if other, dup := hosts[r.Host]; dup && other != o.Ref() {
				bad = append(bad, fmt.Sprintf("%s: host %s is also served by %s", o.Ref(), r.Host, other))
			}
			hosts[r.Host] = o.Ref()
			if !slices.Contains(tlsHosts, r.Host) {
				bad = append(bad, fmt.Sprintf("%s: host %s has no TLS entry", o.Ref(), r.Host))
			}
		}
	}
	for ref, ks := range refs {
		if rendered[ref] {
			continue
		}
		have, ok := documented[ref]
		if !ok {
			bad = append(bad, fmt.Sprintf("Secret %s is read by a pod but neither rendered nor in k8s/secrets/secrets.template.yaml", ref))
			continue
		}
		for _, k := range ks {
			if !slices.Contains(have, k) {
				bad = append(bad, fmt.Sprintf("Secret %s: key %s is read by a pod but not in k8s/secrets/secrets.template.yaml", ref, k))
			}
		}
	}
	require.NotEmpty(t, hosts)
	slices.Sort(bad)
	return bad
}

// TestChartsReferenceWhatTheEnvironmentCreates: for every environment, what the two charts'
// renders take for granted exists: each cert-manager issuer an Ingress names is a ClusterIssuer of
// that environment's bootstrap; each namespace a release lands in is a bootstrap Namespace; each
// Secret a pod reads that no chart renders is one k8s/secrets tells the operator to create (name,
// namespace, keys); each host is served by one Ingress only and its TLS entry covers it.
// A miss here is a certificate never issued or a pod stuck in CreateContainerConfigError.
func TestChartsReferenceWhatTheEnvironmentCreates(t *testing.T) {
	documented := documentedSecrets(t)
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			boot, err := build(t, filesys.MakeFsOnDisk(), path.Join("environments", name))
			require.NoError(t, err)
			objs := append(chartstest.MustRender(t, name).Objects, renderMonitoring(t, name).Objects...)
			require.Empty(t, referenceViolations(t, name, boot, objs, documented))
		})
	}
}

// TestReferenceCheckCatchesBrokenEnvironments: the seed's staging defect and its siblings, each
// named with the object and what is missing.
func TestReferenceCheckCatchesBrokenEnvironments(t *testing.T) {
	documented := documentedSecrets(t)
	boot, err := build(t, filesys.MakeFsOnDisk(), path.Join("environments", "staging"))
	require.NoError(t, err)
	apps := chartstest.MustRender(t, "staging").Objects
	tests := []struct {
		name     string
		override map[string]any
		want     string
	}{
		{name: "seed defect: staging Grafana asks for letsencrypt-prod",
			override: chartstest.Set("ingress.annotations", map[string]any{"cert-manager.io/cluster-issuer": "letsencrypt-prod"}),
			want:     `Ingress/monitoring/monitoring-grafana: cluster-issuer "letsencrypt-prod" is not created by k8s/environments/staging (it creates [letsencrypt-staging]); the certificate is never issued`},
		{name: "Grafana admin from a Secret nobody is told to create",
			override: chartstest.Set("grafana.admin.existingSecret", "grafana-root"),
			want:     "Secret monitoring/grafana-root is read by a pod but neither rendered nor in k8s/secrets/secrets.template.yaml"},
		{name: "a key the template does not list",
			override: chartstest.Set("grafana.admin.passwordKey", "password"),
			want:     "Secret monitoring/grafana-admin: key password is read by a pod but not in k8s/secrets/secrets.template.yaml"},
		{name: "Grafana on an apps host",
			override: chartstest.Set("ingress.host", "auth.staging.krgeobuk.com"),
			want:     "host auth.staging.krgeobuk.com is also served by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append(slices.Clone(apps), renderMonitoring(t, "staging", tt.override).Objects...)
			got := referenceViolations(t, "staging", boot, objs, documented)
			require.Len(t, got, 1, "%q", got)
			require.Contains(t, got[0], tt.want)
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
