package k8s_test

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
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
			bad = append(bad, withinLimitRange(fmt.Sprintf("%s container %s", name, c.Name), r, lr)...)
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

// peakViolations names every way the apps render res does not fit namespace ns of the bootstrap
// boot at its peak: a container outside the LimitRange, a quota dimension exceeded.
func peakViolations(t *testing.T, boot []render.Object, res *render.Result, ns string) []string {
	t.Helper()
	var quota *corev1.ResourceQuota
	var lr corev1.LimitRangeItem
	for _, o := range boot {
		switch x := o.Typed.(type) {
		case *corev1.ResourceQuota:
			if x.Namespace == ns {
				quota = x
			}
		case *corev1.LimitRange:
			if x.Namespace == ns {
				for _, item := range x.Spec.Limits {
					if item.Type == corev1.LimitTypeContainer {
						lr = item
					}
				}
			}
		}
	}
	require.NotNil(t, quota, "no ResourceQuota for namespace %s", ns)

	hpas := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	for _, o := range res.Objects {
		if h, ok := o.Typed.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			hpas[h.Spec.ScaleTargetRef.Name] = h
		}
	}
	total := corev1.ResourceList{}
	var bad []string
	workloads := 0
	for _, o := range res.Objects {
		var pods int64
		var name string
		var spec corev1.PodSpec
		switch w := o.Typed.(type) {
		case *appsv1.Deployment:
			p, err := peakPods(w, hpas)
			require.NoError(t, err, o.Ref())
			pods, name, spec = p, "Deployment/"+w.Name, w.Spec.Template.Spec
		case *appsv1.StatefulSet:
			// A StatefulSet's rolling update deletes a pod before it creates its replacement: no surge.
			pods, name, spec = 1, "StatefulSet/"+w.Name, w.Spec.Template.Spec
			if w.Spec.Replicas != nil {
				pods = int64(*w.Spec.Replicas)
			}
		default:
			continue
		}
		workloads++
		per, outside := podDemand(name, spec, lr)
		bad = append(bad, outside...)
		for k, q := range per {
			q.Mul(pods)
			cur := total[k]
			cur.Add(q)
			total[k] = cur
		}
	}
	require.NotZero(t, workloads)
	for _, k := range quotaKeys {
		hard, ok := quota.Spec.Hard[k]
		if !ok {
			bad = append(bad, fmt.Sprintf("ResourceQuota/%s sets no %s", quota.Name, k))
			continue
		}
		if need := total[k]; need.Cmp(hard) > 0 {
			bad = append(bad, fmt.Sprintf("ResourceQuota/%s %s: %s, the chart needs %s at peak (HPA maximum + one surge pod per Deployment)", quota.Name, k, hard.String(), need.String()))
		}
	}
	slices.Sort(bad)
	return bad
}

// apiCanaries turns on a canary of n pods for every API, pinned by digest.
func apiCanaries(n int) map[string]any {
	canaries := map[string]any{}
	for _, s := range catalog.All() {
		if s.IsAPI() {
			canaries[s.Name] = map[string]any{"canary": map[string]any{"enabled": true, "replicas": n,
				"image": map[string]any{"digest": chartstest.Digest(s.Name + " canary")}}}
		}
	}
	return map[string]any{"services": canaries}
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
			require.Empty(t, peakViolations(t, boot, chartstest.MustRender(t, name), env.Namespace))
			// A canary analysis starts with one canary pod beside the stable ones.
			require.Empty(t, peakViolations(t, boot, chartstest.MustRender(t, name, apiCanaries(1)), env.Namespace),
				"with a one-pod canary of every API")
			mon, st := chartstest.MustRenderMonitoring(t, name)
			require.Empty(t, peakViolations(t, boot, mon, st.Namespace), "the monitoring stack in its namespace")
		})
	}
}

// TestQuotaCheckCatchesWhatWouldBeRefused: the check sees what admission would refuse, computed
// from the objects: production's apps against the unpatched base quota, a container above the
// LimitRange's max, an init container larger than the app (it sets the pod's request).
func TestQuotaCheckCatchesWhatWouldBeRefused(t *testing.T) {
	// The bare base bootstrap: what production had before its quota patch.
	base, err := build(t, filesys.MakeFsOnDisk(), "base")
	require.NoError(t, err)
	prod, err := build(t, filesys.MakeFsOnDisk(), path.Join("environments", "production"))
	require.NoError(t, err)
	bigInit := chartstest.MustRender(t, "production")
	for _, o := range bigInit.Objects {
		if d, ok := o.Typed.(*appsv1.Deployment); ok && d.Name == "auth-server" {
			d.Spec.Template.Spec.InitContainers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
		}
	}
	tests := []struct {
		name string
		boot []render.Object
		res  *render.Result
		want []string
	}{
		{name: "production against the base quota", boot: base, res: chartstest.MustRender(t, "production"),
			want: []string{"ResourceQuota/krgeobuk limits.cpu: 8, the chart needs ", "ResourceQuota/krgeobuk requests.cpu: 4, the chart needs "}},
		{name: "a container above the LimitRange max", boot: prod,
			res:  chartstest.MustRender(t, "development", chartstest.Set("services.portal-client.resources.limits.memory", "3Gi")),
			want: []string{"Deployment/portal-client container portal-client limits.memory 3Gi above LimitRange max 2Gi"}},
		{name: "an init container larger than the app", boot: prod, res: bigInit,
			want: []string{"ResourceQuota/krgeobuk requests.cpu: 6, the chart needs "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The numbers follow the environment's values; the dimensions and limits are the point.
			got := peakViolations(t, tt.boot, tt.res, "krgeobuk")
			require.Len(t, got, len(tt.want), "%q", got)
			for i, w := range tt.want {
				require.Contains(t, got[i], w)
			}
		})
	}
}

// dataServerReserve is how many of a MySQL instance's max_connections the apps must leave free:
// the exporter, a backup or restore drill, the health check and an operator's session.
const dataServerReserve = 10

// maxConnections reads max_connections from the data server's MySQL configuration: the setting
// every instance (auth-mysql, authz-mysql) starts with.
func maxConnections(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("../infrastructure/mysql/conf.d/krgeobuk.cnf")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^max_connections\s*=\s*(\d+)\s*$`).FindSubmatch(data)
	require.NotNil(t, m, "krgeobuk.cnf sets max_connections")
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	require.NoError(t, err)
	return n
}

// connectionViolations names every MySQL instance the apps render res could exhaust at their
// peak: per instance, the sum over the Deployments that use it (a canary shares its service's
// ConfigMap, hence its instance) of peak pods times the pool's MYSQL_CONNECTION_LIMIT, against
// max less the reserve.
func connectionViolations(t *testing.T, res *render.Result, max int64) []string {
	t.Helper()
	hpas := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	configs := map[string]*corev1.ConfigMap{}
	for _, o := range res.Objects {
		switch x := o.Typed.(type) {
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas[x.Spec.ScaleTargetRef.Name] = x
		case *corev1.ConfigMap:
			configs[x.Name] = x
		}
	}
	need := map[string]int64{}
	parts := map[string][]string{}
	for _, o := range res.Objects {
		d, ok := o.Typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		cm, ok := configs[d.Spec.Template.Labels["app.kubernetes.io/name"]+"-config"]
		if !ok || cm.Data["MYSQL_HOST"] == "" {
			continue // not a MySQL client
		}
		limit, err := strconv.ParseInt(cm.Data["MYSQL_CONNECTION_LIMIT"], 10, 64)
		require.NoError(t, err, "%s MYSQL_CONNECTION_LIMIT", cm.Name)
		pods, err := peakPods(d, hpas)
		require.NoError(t, err, o.Ref())
		host := cm.Data["MYSQL_HOST"]
		need[host] += pods * limit
		parts[host] = append(parts[host], fmt.Sprintf("%s %d pods at peak × MYSQL_CONNECTION_LIMIT %d", d.Name, pods, limit))
	}
	require.NotEmpty(t, need, "no Deployment reads MYSQL_HOST")
	var bad []string
	for host, n := range need {
		if n > max-dataServerReserve {
			slices.Sort(parts[host])
			bad = append(bad, fmt.Sprintf("%s: %s = %d connections, above max_connections %d less %d reserved",
				host, strings.Join(parts[host], " + "), n, max, dataServerReserve))
		}
	}
	slices.Sort(bad)
	return bad
}

// TestDatabaseConnectionsFitTheDataServer: in every environment, each API at its peak (HPA maximum
// plus one surge pod, every pool full) stays inside its MySQL instance's max_connections with room
// for the exporter, backups and an operator. Past it, new pods fail readiness with "Too many
// connections" exactly when load is highest.
func TestDatabaseConnectionsFitTheDataServer(t *testing.T) {
	max := maxConnections(t)
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			require.Empty(t, connectionViolations(t, chartstest.MustRender(t, name), max))
			canary := connectionViolations(t, chartstest.MustRender(t, name, apiCanaries(1)), max)
			if why, known := noCanaryAtPeak[name]; known {
				require.NotEmpty(t, canary, "%s now admits a canary at peak: remove it from noCanaryAtPeak (%s)", name, why)
				return
			}
			require.Empty(t, canary, "with a one-pod canary of every API")
		})
	}
	t.Run("a canary's pools count against its service's instance", func(t *testing.T) {
		res := chartstest.MustRender(t, "staging", chartstest.Set("services.authz-server.config.MYSQL_CONNECTION_LIMIT", "60"))
		require.Empty(t, connectionViolations(t, res, max), "3 pods × 60 fit")
		res = chartstest.MustRender(t, "staging", chartstest.Set("services.authz-server.config.MYSQL_CONNECTION_LIMIT", "60"), apiCanaries(1))
		require.Equal(t, []string{"authz-mysql: authz-server 3 pods at peak × MYSQL_CONNECTION_LIMIT 60 + authz-server-canary 2 pods at peak × MYSQL_CONNECTION_LIMIT 60 = 300 connections, above max_connections 200 less 10 reserved"},
			connectionViolations(t, res, max))
	})
}

// noCanaryAtPeak names the environments whose data server cannot take a one-pod canary's pools
// while the APIs are at their HPA maximum, and why. Production: 9 pods × 20 = 180 of 190
// connections per instance; a canary (1 pod + 1 surge) × 20 would make 220. Lower production's
// MYSQL_CONNECTION_LIMIT to 17 or raise max_connections before running canaries there at peak.
var noCanaryAtPeak = map[string]string{
	"production": "9 stable pods × MYSQL_CONNECTION_LIMIT 20 leave no room for a canary's pools",
}

// An environment whose deploys run canaries (environment.yaml analysis.canary) has room for a
// canary's database pools while its APIs are at their HPA maximum: the canary steps must not be
// what exhausts the data server at peak.
func TestCanaryEnvironmentsHaveRoomAtPeak(t *testing.T) {
	canaries := 0
	for _, name := range []string{"development", "staging", "production"} {
		env, err := environment.Load(k8s.Environments, name)
		require.NoError(t, err)
		if env.Analysis == nil || env.Analysis.Canary == nil {
			continue
		}
		canaries++
		why, short := noCanaryAtPeak[name]
		require.False(t, short, "%s runs canary steps but cannot take a canary at peak: %s", name, why)
	}
	require.NotZero(t, canaries, "some environment runs canaries (or this test checks nothing)")
}
