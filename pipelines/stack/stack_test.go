package stack_test

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

func load(t *testing.T, name string) *environment.Environment {
	t.Helper()
	env, err := environment.Load(k8s.Environments, name)
	require.NoError(t, err)
	return env
}

func TestFor(t *testing.T) {
	env := load(t, "staging")
	apps, err := stack.For(env, "")
	require.NoError(t, err)
	require.Equal(t, stack.Apps, apps.Name, "the apps are the default")
	require.Equal(t, environment.Placement{Namespace: "krgeobuk", Release: "krgeobuk-apps"}, apps.Placement)
	require.False(t, apps.ChartImages, "the apps' images are built by the pipeline and must be named")

	mon, err := stack.For(env, stack.Monitoring)
	require.NoError(t, err)
	require.Equal(t, environment.Placement{Namespace: "monitoring", Release: "monitoring"}, mon.Placement)
	require.Equal(t, env.MonitoringValues, mon.Values)
	require.Equal(t, values.Monitoring.Chart, mon.Layout.Chart)
	require.True(t, mon.ChartImages)
	a, err := mon.Chart()
	require.NoError(t, err)
	b, err := mon.Chart()
	require.NoError(t, err)
	require.Equal(t, "monitoring-stack", a.Name())
	require.NotSame(t, a, b, "a fresh chart every time: Helm mutates what it is given")

	_, err = stack.For(env, "logging")
	require.EqualError(t, err, `unknown stack "logging" (known: apps, monitoring)`)

	unplaced := *env
	unplaced.Monitoring = nil
	_, err = stack.For(&unplaced, stack.Monitoring)
	require.EqualError(t, err, "environment staging does not deploy the monitoring stack: its environment.yaml has no monitoring: block (namespace, release)")
	novalues := *env
	novalues.MonitoringValues = nil
	_, err = stack.For(&novalues, stack.Monitoring)
	require.EqualError(t, err, "environment staging does not deploy the monitoring stack: it has no monitoring-stack.values.yaml")
}

// The readiness gate asks a component through the Service named as its workload, on the port
// named by its Probe, at the path its container's own readiness probe asks. Both charts must keep
// that shape in every environment, or the gate would ask something that does not exist.
func TestReadinessProbesMatchTheCharts(t *testing.T) {
	for _, envName := range []string{"development", "staging", "production"} {
		env := load(t, envName)
		for _, name := range stack.Names() {
			t.Run(envName+"/"+name, func(t *testing.T) {
				s, err := stack.For(env, name)
				require.NoError(t, err)
				ch, err := s.Chart()
				require.NoError(t, err)
				enabled, err := s.Layout.Enabled(ch, s.Values)
				require.NoError(t, err)
				pins := map[string]values.Image{}
				for _, c := range enabled {
					pins[c] = values.Image{Repository: "reg.example/" + c, Digest: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(c))), Tag: "1.0.0"}
				}
				// The apps with a canary of every API: its Deployment is checked through its own Service.
				var request map[string]any
				if name == stack.Apps {
					canaries := map[string]any{}
					for _, c := range enabled {
						canaries[c] = map[string]any{"canary": map[string]any{"enabled": true, "replicas": 1,
							"image": map[string]any{"digest": fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(c+" canary")))}}}
					}
					request = map[string]any{"services": canaries}
				}
				res, err := render.Render(t.Context(), render.Request{Chart: ch, Release: s.Release, Namespace: s.Namespace,
					Values: s.Layout.Layer(s.Values, request, pins)})
				require.NoError(t, err)

				services := map[string]*corev1.Service{}
				for _, o := range res.Objects {
					if svc, ok := o.Typed.(*corev1.Service); ok {
						services[svc.Name] = svc
					}
				}
				checked := 0
				for _, o := range res.Objects {
					var tmpl *corev1.PodTemplateSpec
					switch w := o.Typed.(type) {
					case *appsv1.Deployment:
						tmpl = &w.Spec.Template
					case *appsv1.StatefulSet:
						tmpl = &w.Spec.Template
					default:
						continue
					}
					component := o.U.GetLabels()["app.kubernetes.io/name"]
					require.Contains(t, enabled, component, "%s: its app.kubernetes.io/name label names the component", o.Ref())
					probe, ok := s.Readiness(component)
					if !ok {
						continue
					}
					checked++
					c := tmpl.Spec.Containers[0]
					require.NotNil(t, c.ReadinessProbe, o.Ref())
					require.Equal(t, probe.Path, c.ReadinessProbe.HTTPGet.Path, "%s: the gate asks what the kubelet asks", o.Ref())
					var port int32
					for _, p := range c.Ports {
						if p.Name == probe.PortName {
							port = p.ContainerPort
						}
					}
					require.EqualValues(t, probe.ContainerPort, port, "%s: container port %s", o.Ref(), probe.PortName)
					svc := services[o.U.GetName()]
					require.NotNil(t, svc, "%s: a Service of the same name fronts it", o.Ref())
					require.NotEqual(t, "None", svc.Spec.ClusterIP, "%s: not the headless one", o.Ref())
					require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tmpl.Labels)), "%s: its Service selects its pods", o.Ref())
					var named bool
					for _, p := range svc.Spec.Ports {
						named = named || p.Name == probe.PortName
					}
					require.True(t, named, "Service %s has a port named %s", svc.Name, probe.PortName)
				}
				want := map[string]int{stack.Apps: 4, stack.Monitoring: 3}[name]
				require.Equal(t, want, checked, "the APIs and their canaries; every monitoring component")
			})
		}
	}
}
