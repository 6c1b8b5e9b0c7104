package k8s_test

import (
	"context"
	"os"
	"testing"
	"time"

	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const deployer = "system:serviceaccount:krgeobuk:krgeobuk-deployer"

func budget() func() retry.Backoff {
	return func() retry.Backoff { return kube.Budget(20 * time.Second) }
}

// bootstrap applies k8s/base (namespaces, the deployer's RBAC, quota) to the cluster as its admin,
// as an operator does once per cluster, and returns a client that acts as the deployer.
func bootstrap(t *testing.T) *kube.Client {
	t.Helper()
	c := testenv.Shared(t)
	admin, err := kube.FromKubeconfig(c.Kubeconfig(), "krgeobuk")
	require.NoError(t, err)
	objs, err := build(t, filesys.MakeFsOnDisk(), "base")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		apply(ctx, t, admin, o.U)
	}

	cfg, err := clientcmd.Load(c.Kubeconfig())
	require.NoError(t, err)
	for _, a := range cfg.AuthInfos {
		a.Impersonate = deployer
	}
	data, err := clientcmd.Write(*cfg)
	require.NoError(t, err)
	dep, err := kube.FromKubeconfig(data, "krgeobuk")
	require.NoError(t, err)
	return dep
}

func apply(ctx context.Context, t *testing.T, c *kube.Client, u *unstructured.Unstructured) {
	t.Helper()
	gvk := u.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	require.NoError(t, err, gvk.String())
	data, err := u.MarshalJSON()
	require.NoError(t, err)
	force := true
	res := c.Dynamic.Resource(m.Resource)
	var ri interface {
		Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
	} = res
	if ns := u.GetNamespace(); ns != "" {
		ri = res.Namespace(ns)
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "krgeobuk-bootstrap", Force: &force})
	require.NoError(t, err, u.GetKind()+"/"+u.GetName())
}

func unstructuredOf(objs []render.Object) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.U
	}
	return out
}

// Every environment's render of both stacks is accepted by the real kube-apiserver (validation,
// defaulting, admission including Pod Security "restricted" on the namespace), applied as the
// deployer ServiceAccount with nothing but its Roles from k8s/base: a kind missing from a Role, a
// field the server rejects or a quota the release cannot fit in fails here, not halfway through a
// deploy.
func TestEveryEnvironmentPassesServerSideDryRunAsTheDeployer(t *testing.T) {
	dep := bootstrap(t)
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			apps := chartstest.MustRender(t, name)
			monitoring, _ := chartstest.MustRenderMonitoring(t, name)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, dep.DryRunApply(ctx, unstructuredOf(apps.Objects), "krgeobuk-validate", budget()), "apps")
			require.NoError(t, dep.DryRunApply(ctx, unstructuredOf(monitoring.Objects), "krgeobuk-validate", budget()), "monitoring")
		})
	}
}

func TestServerSideDryRunRejectsBrokenObjects(t *testing.T) {
	dep := bootstrap(t)
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{
			name:    "a field value the API server refuses",
			doc:     "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: krgeobuk}\nspec: {ports: [{name: http, port: 70000}]}",
			wantErr: "Service/krgeobuk/bad:",
		},
		{
			name:    "a kind the deployer may not manage",
			doc:     "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: escalate, namespace: krgeobuk}\nrules: []",
			wantErr: `Role/krgeobuk/escalate: roles.rbac.authorization.k8s.io "escalate" is forbidden: User "` + deployer + `"`,
		},
		{
			name:    "a namespace the deployer does not own",
			doc:     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\ndata: {a: b}",
			wantErr: `ConfigMap/kube-system/x: configmaps "x" is forbidden`,
		},
		{
			name:    "a cluster role (the bootstrap's to create)",
			doc:     "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: monitoring-prometheus-extra}\nrules: []",
			wantErr: `ClusterRole/monitoring-prometheus-extra: clusterroles.rbac.authorization.k8s.io "monitoring-prometheus-extra" is forbidden: User "` + deployer + `"`,
		},
		{
			name: "binding the discovery ClusterRole in the monitoring namespace",
			doc: "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: grab, namespace: monitoring}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: monitoring-prometheus}\n" +
				"subjects: [{kind: ServiceAccount, name: krgeobuk-deployer, namespace: krgeobuk}]",
			wantErr: `RoleBinding/monitoring/grab: rolebindings.rbac.authorization.k8s.io "grab" is forbidden: User "` + deployer + `"`,
		},
		{
			name:    "a StatefulSet in the apps namespace (the monitoring grants stay in monitoring)",
			doc:     "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: krgeobuk}\nspec: {serviceName: db, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}}",
			wantErr: `StatefulSet/krgeobuk/db: statefulsets.apps "db" is forbidden: User "` + deployer + `"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := render.Decode(tt.doc)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = dep.DryRunApply(ctx, unstructuredOf(objs), "krgeobuk-validate", budget())
			require.ErrorContains(t, err, "server-side dry run rejected 1 of 1 objects")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
