package render_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

func TestLoadFSHonoursHelmignore(t *testing.T) {
	ch, err := render.LoadFS(os.DirFS("testdata"), "tiny")
	require.NoError(t, err)
	require.Equal(t, "tiny", ch.Name())
	for _, f := range ch.Files {
		require.NotEqual(t, "ignored.txt", f.Name)
	}
	_, err = render.LoadFS(os.DirFS("testdata"), "missing")
	require.ErrorContains(t, err, "chart missing")
}

func TestRender(t *testing.T) {
	ch, err := render.LoadFS(os.DirFS("testdata"), "tiny")
	require.NoError(t, err)
	tests := []struct {
		name    string
		values  map[string]any
		wantErr string
	}{
		{name: "defaults"},
		{name: "schema violation", values: map[string]any{"replicas": 0},
			wantErr: "render chart tiny: values don't meet the specifications of the schema"},
		{name: "unknown field fails strict decoding, naming object and template", values: map[string]any{"typo": true},
			wantErr: `ConfigMap/one (tiny/templates/cm.yaml): strict decode: strict decoding error: unknown field "spec"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := map[string]any{"nested": map[string]any{"k": "v"}}
			for k, v := range tt.values {
				values[k] = v
			}
			res, err := render.Render(context.Background(), render.Request{Chart: ch, Release: "r", Namespace: "ns", Values: values})
			require.Equal(t, map[string]any{"k": "v"}, values["nested"], "the caller's values are never modified")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, res.Objects, 2)
			cm, ok := res.Objects[0].Typed.(*corev1.ConfigMap)
			require.True(t, ok, "built-in kinds decode into their Go type")
			require.Equal(t, "1", cm.Data["replicas"])
			require.Equal(t, "tiny/templates/cm.yaml", res.Objects[0].Source)
			require.Nil(t, res.Objects[1].Typed, "custom resources stay unstructured")
			require.Equal(t, "Widget/one", res.Objects[1].Ref())
		})
	}
}

func TestLintStrict(t *testing.T) {
	require.NoError(t, render.Lint("testdata/tiny", "ns", nil))
	err := render.Lint("testdata/tiny", "ns", map[string]any{"replicas": "two"})
	require.ErrorContains(t, err, "helm lint --strict testdata/tiny")
}
