package k8s_test

import (
	"fmt"
	"path"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
)

// quotaKeys are the quota dimensions the chart's pods consume.
var quotaKeys = []corev1.ResourceName{
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourcePods,
}

// withDefaults applies a LimitRange's container defaults the way the LimitRanger admission
// plugin does: a missing limit gets default, a missing request gets defaultRequest.
func withDefaults(r corev1.ResourceRequirements, lr corev1.LimitRangeItem) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := r.Limits[res]; ok {
			out.Limits[res] = q
		} else if q, ok := lr.Default[res]; ok {
			out.Limits[res] = q
		}
		if q, ok := r.Requests[res]; ok {
			out.Requests[res] = q
		} else if q, ok := lr.DefaultRequest[res]; ok {
			out.Requests[res] = q
		}
	}
	return out
}

// withinLimitRange names every request or limit outside the LimitRange's min/max: such a pod is
// refused at admission, whatever the quota says.
func withinLimitRange(who string, r corev1.ResourceRequirements, lr corev1.LimitRangeItem) []string {
	var bad []string
	for _, list := range []struct {
		kind string
		l    corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for res, q := range list.l {
			if max, ok := lr.Max[res]; ok && q.Cmp(max) > 0 {
				bad = append(bad, fmt.Sprintf("%s %s.%s %s above LimitRange max %s", who, list.kind, res, q.String(), max.String()))
			}
			if min, ok := lr.Min[res]; ok && q.Cmp(min) < 0 {
				bad = append(bad, fmt.Sprintf("%s %s.%s %s below LimitRange min %s", who, list.kind, res, q.String(), min.String()))
			}
		}
	}
	return bad
}

// podDemand is what one pod counts against a quota: per resource, the larger of the sum of its
// containers and its largest init container (init containers run one at a time, before the rest).
func podDemand(name string, spec corev1.PodSpec, lr corev1.LimitRangeItem) (corev1.ResourceList, []string) {
	sum := corev1.ResourceList{}
	initMax := corev1.ResourceList{}
	var bad []string
	add := func(into corev1.ResourceList, key corev1.ResourceName, q resource.Quantity, max bool) {
		cur := into[key]
		if max {
			if q.Cmp(cur) > 0 {
				into[key] = q.DeepCopy()
			}
			return
		}
		cur.Add(q)
		into[key] = cur
	}
	for i, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range cs {
			r := withDefaults(c.Resources, lr)
			bad = append(bad, withinLimitRange(fmt.Sprintf("Deployment/%s container %s", name, c.Name), r, lr)...)
			into := sum
			if i == 1 {
				into = initMax
			}
			add(into, corev1.ResourceRequestsCPU, r.Requests[corev1.ResourceCPU], i == 1)
			add(into, corev1.ResourceRequestsMemory, r.Requests[corev1.ResourceMemory], i == 1)
			add(into, corev1.ResourceLimitsCPU, r.Limits[corev1.ResourceCPU], i == 1)
			add(into, corev1.ResourceLimitsMemory, r.Limits[corev1.ResourceMemory], i == 1)
		}
	}
	for k, q := range initMax {
		if q.Cmp(sum[k]) > 0 {
			sum[k] = q
		}
	}
	sum[corev1.ResourcePods] = resource.MustParse("1")
	return sum, bad
}

// peakPods is how many pods a Deployment can run at once: the HPA's maximum (or its replicas when
// not autoscaled) plus the rolling update's surge.
func peakPods(d *appsv1.Deployment, hpas map[string]*autoscalingv2.HorizontalPodAutoscaler) (int64, error) {
	n := int64(1)
	if d.Spec.Replicas != nil {
		n = int64(*d.Spec.Replicas)
	}
	if h, ok := hpas[d.Name]; ok {
		n = int64(h.Spec.MaxReplicas)
	}
	surge := intstr.FromString("25%") // Kubernetes' default when the chart says nothing
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(&surge, int(n), true)
	return n + int64(s), err
}

// TestQuotaFitsTheChartAtPeak: every environment's bootstrap (ResourceQuota and LimitRange in the
// apps namespace) admits the apps chart at its peak: every Deployment at its HPA maximum with one
// surge pod, every container within the LimitRange. A quota too small shows as pods refused
// during a rollout or a scale-up, never at install.
func TestQuotaFitsTheChartAtPeak(t *testing.T) {
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			env := chartstest.Env(t, name)
			boot, err := build(t, filesys.MakeFsOnDisk(), path.Join("environments", name))
			require.NoError(t, err)
			var quota *corev1.ResourceQuota
			var lr corev1.LimitRangeItem
			for _, o := range boot {
				switch x := o.Typed.(type) {
				case *corev1.ResourceQuota:
					if x.Namespace == env.Namespace {
						quota = x
					}
				case *corev1.LimitRange:
					if x.Namespace == env.Namespace {
						for _, item := range x.Spec.Limits {
							if item.Type == corev1.LimitTypeContainer {
								lr = item
							}
						}
					}
				}
			}
			require.NotNil(t, quota, "no ResourceQuota for namespace %s", env.Namespace)

			res := chartstest.MustRender(t, name)
			hpas := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
			for _, o := range res.Objects {
				if h, ok := o.Typed.(*autoscalingv2.HorizontalPodAutoscaler); ok {
					hpas[h.Spec.ScaleTargetRef.Name] = h
				}
			}
			total := corev1.ResourceList{}
			var bad []string
			deployments := 0
			for _, o := range res.Objects {
				d, ok := o.Typed.(*appsv1.Deployment)
				if !ok {
					continue
				}
				deployments++
				pods, err := peakPods(d, hpas)
				require.NoError(t, err, o.Ref())
				per, outside := podDemand(d.Name, d.Spec.Template.Spec, lr)
				bad = append(bad, outside...)
				for k, q := range per {
					q.Mul(pods)
					cur := total[k]
					cur.Add(q)
					total[k] = cur
				}
			}
			require.NotZero(t, deployments)
			for _, k := range quotaKeys {
				hard, ok := quota.Spec.Hard[k]
				require.True(t, ok, "ResourceQuota/%s sets no %s", quota.Name, k)
				if need := total[k]; need.Cmp(hard) > 0 {
					bad = append(bad, fmt.Sprintf("ResourceQuota/%s %s: %s, the chart needs %s at peak (HPA maximum + one surge pod per Deployment)", quota.Name, k, hard.String(), need.String()))
				}
			}
			require.Empty(t, bad)
		})
	}
}
