package k8s_test

import (
	"path"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// build runs `kustomize build` on dir through kustomize's Go API and decodes the result strictly.
func build(t *testing.T, fs filesys.FileSystem, dir string) ([]render.Object, error) {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	out, err := resMap.AsYaml()
	require.NoError(t, err)
	return render.Decode(string(out))
}

func TestEveryEnvironmentBuilds(t *testing.T) {
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	require.Len(t, names, 3)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			objs, err := build(t, filesys.MakeFsOnDisk(), path.Join("environments", name))
			require.NoError(t, err)

			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.U.GetKind()]++
				require.Equal(t, name, o.U.GetLabels()["krgeobuk.com/environment"], o.Ref())
				if ns, ok := o.Typed.(*corev1.Namespace); ok {
					require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"], o.Ref())
				}
			}
			require.Equal(t, map[string]int{
				"Namespace": 2, "ServiceAccount": 1, "Role": 2, "RoleBinding": 2, "ClusterRole": 1, "ClusterRoleBinding": 1,
				"ResourceQuota": 2, "LimitRange": 2, "ClusterIssuer": 1, // one of each per namespace
			}, kinds)
		})
	}
}

func TestBrokenKustomizationFails(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{
			name:    "missing resource",
			files:   map[string]string{"env/kustomization.yaml": "resources: [quota.yaml]\n"},
			wantErr: "quota.yaml",
		},
		{
			name: "misspelt field in a resource",
			files: map[string]string{
				"env/kustomization.yaml": "resources: [ns.yaml]\n",
				"env/ns.yaml":            "apiVersion: v1\nkind: Namespace\nmetadata: {name: krgeobuk, lables: {a: b}}\n",
			},
			wantErr: `Namespace/krgeobuk (unknown template): strict decode: strict decoding error: unknown field "metadata.lables"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := filesys.MakeFsInMemory()
			for p, data := range tt.files {
				require.NoError(t, fs.WriteFile(p, []byte(data)))
			}
			_, err := build(t, fs, "env")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
