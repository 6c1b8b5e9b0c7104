package k8s_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// monitoringRBAC decodes k8s/base/monitoring-rbac.yaml.
func monitoringRBAC(t *testing.T) (*rbacv1.Role, *rbacv1.RoleBinding, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	t.Helper()
	data, err := k8s.Environments.ReadFile("base/monitoring-rbac.yaml")
	require.NoError(t, err)
	objs, err := render.Decode(string(data))
	require.NoError(t, err)
	var (
		role *rbacv1.Role
		rb   *rbacv1.RoleBinding
		cr   *rbacv1.ClusterRole
		crb  *rbacv1.ClusterRoleBinding
	)
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *rbacv1.Role:
			role = v
		case *rbacv1.RoleBinding:
			rb = v
		case *rbacv1.ClusterRole:
			cr = v
		case *rbacv1.ClusterRoleBinding:
			crb = v
		}
	}
	require.NotNil(t, role)
	require.NotNil(t, rb)
	require.NotNil(t, cr)
	require.NotNil(t, crb)
	return role, rb, cr, crb
}

// TestMonitoringDeployerRole: the deployer's Role in the monitoring namespace can apply every kind
// the monitoring chart renders in every environment (the render holds nothing cluster-scoped and
// nothing outside the namespace), it is bound to the deployer's ServiceAccount, and it grants
// nothing on RBAC objects: the deployer can neither escalate nor bind.
func TestMonitoringDeployerRole(t *testing.T) {
	role, rb, _, _ := monitoringRBAC(t)
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}, rb.RoleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "krgeobuk-deployer", Namespace: "krgeobuk"}}, rb.Subjects)
	require.Equal(t, role.Namespace, rb.Namespace)
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			require.NotContains(t, []string{rbacv1.GroupName, "*"}, g, "no grant on RBAC objects")
		}
		for _, v := range r.Verbs {
			require.NotContains(t, []string{"escalate", "bind", "impersonate", "*"}, v)
		}
		require.NotContains(t, r.Resources, "*")
	}

	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			res, st := chartstest.MustRenderMonitoring(t, name)
			require.Equal(t, role.Namespace, st.Namespace, "the Role is where environment.yaml places the stack")
			require.NoError(t, policy.Error(policy.DeployerCanApply(role, res.Objects)))
			for _, o := range res.Objects {
				require.Equal(t, st.Namespace, o.U.GetNamespace(), "%s: only namespaced objects, in the stack's namespace", o.Ref())
			}

			// The chart's own discovery RBAC (a cluster admin's install) is what the Role refuses.
			withRBAC, _ := chartstest.MustRenderMonitoring(t, name, chartstest.Set("prometheus.rbac.create", true))
			var msgs []string
			for _, v := range policy.DeployerCanApply(role, withRBAC.Objects) {
				msgs = append(msgs, v.Message)
			}
			require.Equal(t, []string{
				"cannot get/list/create/update/patch/delete clusterrolebindings.rbac.authorization.k8s.io (needed for ClusterRoleBinding/monitoring-prometheus)",
				"cannot get/list/create/update/patch/delete clusterroles.rbac.authorization.k8s.io (needed for ClusterRole/monitoring-prometheus)",
			}, msgs)
		})
	}
}

// TestBootstrapOwnsPrometheusDiscovery: the ClusterRole and ClusterRoleBinding the bootstrap
// creates grant exactly what the chart would render for itself, to the ServiceAccount the chart
// creates for the release every environment places.
func TestBootstrapOwnsPrometheusDiscovery(t *testing.T) {
	_, _, cr, crb := monitoringRBAC(t)
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}, crb.RoleRef)
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			res, _ := chartstest.MustRenderMonitoring(t, name)
			var sa *corev1.ServiceAccount
			for _, o := range res.Objects {
				if v, ok := o.Typed.(*corev1.ServiceAccount); ok && v.Labels["app.kubernetes.io/name"] == "prometheus" {
					sa = v
				}
			}
			require.NotNil(t, sa, "the chart still creates Prometheus's ServiceAccount")
			require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}}, crb.Subjects,
				"bound to the ServiceAccount of the release environment.yaml names")

			own, _ := chartstest.MustRenderMonitoring(t, name, chartstest.Set("prometheus.rbac.create", true))
			var chartRole *rbacv1.ClusterRole
			var chartBinding *rbacv1.ClusterRoleBinding
			for _, o := range own.Objects {
				switch v := o.Typed.(type) {
				case *rbacv1.ClusterRole:
					chartRole = v
				case *rbacv1.ClusterRoleBinding:
					chartBinding = v
				}
			}
			require.NotNil(t, chartRole)
			require.Equal(t, chartRole.Name, cr.Name)
			require.Equal(t, chartRole.Rules, cr.Rules, "the same rules as the chart's own")
			require.Equal(t, chartBinding.Subjects, crb.Subjects)
		})
	}
}
