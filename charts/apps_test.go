package charts_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

func find[T runtime.Object](res *render.Result, name string) T {
	var zero T
	for _, o := range res.Objects {
		if t, ok := o.Typed.(T); ok && o.U.GetName() == name {
			return t
		}
	}
	return zero
}

func deployerRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	data, err := k8s.Environments.ReadFile("base/deployer-rbac.yaml")
	require.NoError(t, err)
	objs, err := render.Decode(string(data))
	require.NoError(t, err)
	for _, o := range objs {
		if r, ok := o.Typed.(*rbacv1.Role); ok {
			return r
		}
	}
	t.Fatal("base/deployer-rbac.yaml has no Role")
	return nil
}

// Every environment: lint --strict, render, strict decode (inside Render), every policy rule,
// and the deployer's Role covers every kind the release applies.
func TestAppsEveryEnvironment(t *testing.T) {
	names, err := environment.Names(k8s.Environments)
	require.NoError(t, err)
	role := deployerRole(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			env := chartstest.Env(t, name)
			vals := chartstest.DeployValues(env)
			require.NoError(t, render.Lint(charts.AppsDir, env.Namespace, vals))

			res, err := chartstest.Render(t, env, vals)
			require.NoError(t, err)
			require.NotEmpty(t, res.Notes)
			policyName, err := values.ImagePolicy(chartstest.Chart(t), vals)
			require.NoError(t, err)
			ctx := policy.Context{Environment: name, RequireDigest: policyName == values.PolicyDigest}
			require.NoError(t, policy.Error(policy.Check(ctx, res.Objects)))
			require.NoError(t, policy.Error(policy.DeployerCanApply(role, res.Objects)))
			for _, o := range res.Objects {
				require.Equal(t, env.Namespace, o.U.GetNamespace(), "%s must be namespaced to the release", o.Ref())
				require.Equal(t, "krgeobuk", o.U.GetLabels()["app.kubernetes.io/part-of"], o.Ref())
			}
		})
	}
}

func TestAppsDefaultsLintStrict(t *testing.T) {
	require.NoError(t, render.Lint(charts.AppsDir, "krgeobuk", nil))
}

// The catalog is the single source of truth: the chart's values must describe exactly its
// services, with the same kinds, ports and health paths, and the same data stores.
func TestAppsAgreeWithCatalog(t *testing.T) {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	require.NoError(t, err)
	services, ok := ch.Values["services"].(map[string]any)
	require.True(t, ok)

	var chartNames []string
	for name := range services {
		chartNames = append(chartNames, name)
		_, err := catalog.Lookup(name)
		require.NoError(t, err, "chart service %s is not in the catalog", name)
	}
	require.ElementsMatch(t, catalog.Names(), chartNames, "catalog services missing from the chart")

	for _, s := range catalog.All() {
		v := services[s.Name].(map[string]any)
		require.Equal(t, string(s.Kind), v["kind"], s.Name)
		ports := v["ports"].(map[string]any)
		require.EqualValues(t, s.HTTPPort, ports["http"], s.Name)
		health := v["health"].(map[string]any)
		require.Equal(t, s.LivenessPath, health["liveness"], s.Name)
		require.Equal(t, s.ReadinessPath, health["readiness"], s.Name)
		if s.IsAPI() {
			require.EqualValues(t, s.TCPPort, ports["tcp"], s.Name)
			require.Equal(t, s.MetricsPath, health["metrics"], s.Name)
			var stores []string
			for _, st := range s.Stores {
				stores = append(stores, st.Name)
			}
			require.ElementsMatch(t, stores, v["stores"], s.Name)
			require.ElementsMatch(t, s.Calls, v["calls"], s.Name)
		} else {
			require.NotContains(t, ports, "tcp", s.Name)
		}
	}

	stores := ch.Values["dataStores"].(map[string]any)
	require.Len(t, stores, len(catalog.Stores()))
	for _, st := range catalog.Stores() {
		v, ok := stores[st.Name].(map[string]any)
		require.True(t, ok, "data store %s missing from the chart", st.Name)
		require.Equal(t, st.Engine, v["engine"], st.Name)
		require.EqualValues(t, st.Port, v["port"], st.Name)
	}
}

// The rendered objects carry what the platform relies on.
func TestAppsRenderedShape(t *testing.T) {
	res := chartstest.MustRender(t, "production")

	for _, s := range catalog.All() {
		d := find[*appsv1.Deployment](res, s.Name)
		require.NotNil(t, d, s.Name)
		pod := d.Spec.Template
		c := pod.Spec.Containers[0]
		require.Equal(t, "ghcr.io/krgeobuk/"+s.Name+"@"+chartstest.Digest(s.Name), c.Image)
		require.NotNil(t, c.StartupProbe, s.Name)
		require.Equal(t, s.ReadinessPath, c.ReadinessProbe.HTTPGet.Path, s.Name)
		require.Equal(t, s.LivenessPath, c.LivenessProbe.HTTPGet.Path, s.Name)
		require.Equal(t, int32(s.HTTPPort), c.Ports[0].ContainerPort, s.Name)
		require.NotNil(t, find[*policyV1PDB](res, s.Name), "PodDisruptionBudget for %s", s.Name)
		require.NotEmpty(t, pod.Spec.TopologySpreadConstraints, s.Name)

		svc := find[*corev1.Service](res, s.Name)
		require.NotNil(t, svc, s.Name)
		require.Equal(t, int32(catalog.ServicePort), svc.Spec.Ports[0].Port)
		require.Equal(t, "http", svc.Spec.Ports[0].TargetPort.StrVal)

		if s.IsAPI() {
			require.Equal(t, "true", pod.Annotations["prometheus.io/scrape"])
			require.Equal(t, fmt.Sprint(s.HTTPPort), pod.Annotations["prometheus.io/port"])
			require.Equal(t, s.MetricsPath, pod.Annotations["prometheus.io/path"])
			require.Len(t, svc.Spec.Ports, 2)
			require.Equal(t, int32(s.TCPPort), svc.Spec.Ports[1].Port)
			require.Equal(t, s.Name+"-secrets", c.EnvFrom[1].SecretRef.Name)

			// The wait-for-database init container is bounded.
			init := pod.Spec.InitContainers[0]
			require.Equal(t, "wait-for-database", init.Name)
			require.Equal(t, c.Image, init.Image, "the init container reuses the app image, no third-party image")
			require.Equal(t, "WAIT_TIMEOUT_SECONDS", init.Env[0].Name)
			require.Equal(t, "180", init.Env[0].Value)

			cm := find[*corev1.ConfigMap](res, s.Name+"-config")
			require.NotNil(t, cm, s.Name)
			for _, key := range []string{"NODE_ENV", "PORT", "TCP_PORT", "MYSQL_HOST", "MYSQL_PORT", "MYSQL_DATABASE",
				"MYSQL_CONNECTION_LIMIT", "MYSQL_CONNECT_TIMEOUT_MS", "REDIS_HOST", "REDIS_PORT", "REDIS_DB",
				"REDIS_CONNECT_TIMEOUT_MS", "LOG_LEVEL"} {
				require.Contains(t, cm.Data, key, "%s config", s.Name)
			}
			require.Equal(t, "production", cm.Data["NODE_ENV"])
			for _, st := range s.Stores {
				host, port := "MYSQL_HOST", "MYSQL_PORT"
				if st.Engine == "redis" {
					host, port = "REDIS_HOST", "REDIS_PORT"
				}
				require.Equal(t, st.Name, cm.Data[host])
				require.Equal(t, fmt.Sprint(st.Port), cm.Data[port])
			}
		} else {
			require.NotContains(t, pod.Annotations, "prometheus.io/scrape")
			cm := find[*corev1.ConfigMap](res, s.Name+"-nginx")
			require.NotNil(t, cm, s.Name)
			conf := cm.Data["nginx.conf"]
			require.Contains(t, conf, fmt.Sprintf("listen %d;", s.HTTPPort))
			require.Contains(t, conf, "try_files $uri $uri/ /index.html;", "SPA fallback")
			require.Contains(t, conf, "immutable", "long-lived caching of hashed assets")
			require.Contains(t, conf, "gzip on;")
			require.Contains(t, conf, "pid /tmp/nginx.pid;", "nginx must not write outside its emptyDirs")
		}
	}
	require.Nil(t, find[*corev1.Secret](res, "auth-server-secrets"), "production renders no Secret")
}

type policyV1PDB = policyv1.PodDisruptionBudget

// Selector-less Services with EndpointSlices at the environment's data-server address.
func TestAppsDataServer(t *testing.T) {
	for env, addr := range map[string]string{"development": "10.10.0.10", "staging": "10.20.0.10", "production": "10.30.0.10"} {
		res := chartstest.MustRender(t, env)
		for _, st := range catalog.Stores() {
			svc := find[*corev1.Service](res, st.Name)
			require.NotNil(t, svc, "%s: Service %s", env, st.Name)
			require.Empty(t, svc.Spec.Selector, "%s must be selector-less", st.Name)
			es := find[*discoveryv1.EndpointSlice](res, st.Name+"-data-server")
			require.NotNil(t, es, "%s: EndpointSlice for %s", env, st.Name)
			require.Equal(t, []string{addr}, es.Endpoints[0].Addresses, env)
			require.Equal(t, int32(st.Port), *es.Ports[0].Port)
		}
		for _, o := range res.Objects {
			require.NotEqual(t, "Endpoints", o.U.GetKind(), "the Endpoints API is deprecated")
		}
	}
}

// NetworkPolicies open exactly: ingress controller -> Ingress backends, callers -> callees,
// Prometheus -> API metrics; egress DNS, the data server's own store ports, and callees.
func TestAppsNetworkPolicies(t *testing.T) {
	res := chartstest.MustRender(t, "staging")
	np := find[*networkingv1.NetworkPolicy](res, "auth-server")
	require.NotNil(t, np)

	var froms []string
	for _, r := range np.Spec.Ingress {
		for _, p := range r.From {
			switch {
			case p.NamespaceSelector != nil:
				froms = append(froms, "ns:"+p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
			case p.PodSelector != nil:
				froms = append(froms, "pod:"+p.PodSelector.MatchLabels["app.kubernetes.io/name"])
			}
		}
	}
	require.ElementsMatch(t, []string{"ns:ingress-nginx", "pod:authz-server", "ns:monitoring"}, froms)

	var dataPorts []int
	var cidrs []string
	var callees []string
	for _, r := range np.Spec.Egress {
		for _, to := range r.To {
			if to.IPBlock != nil {
				cidrs = append(cidrs, to.IPBlock.CIDR)
				for _, p := range r.Ports {
					dataPorts = append(dataPorts, p.Port.IntValue())
				}
			}
			if to.PodSelector != nil && to.NamespaceSelector == nil {
				callees = append(callees, to.PodSelector.MatchLabels["app.kubernetes.io/name"])
			}
		}
	}
	require.Equal(t, []string{"10.20.0.10/32"}, cidrs)
	require.ElementsMatch(t, []int{3307, 6380}, dataPorts, "auth-server reaches only its own stores")
	require.Equal(t, []string{"authz-server"}, callees)

	spa := find[*networkingv1.NetworkPolicy](res, "portal-client")
	require.Len(t, spa.Spec.Ingress, 1, "an SPA is reached by the ingress controller only")
	require.Len(t, spa.Spec.Egress, 1, "an SPA talks to nothing but DNS")
}

func TestAppsIngress(t *testing.T) {
	res := chartstest.MustRender(t, "production")
	auth := find[*networkingv1.Ingress](res, "auth-krgeobuk-com")
	require.NotNil(t, auth)
	require.Equal(t, "letsencrypt-prod", auth.Annotations["cert-manager.io/cluster-issuer"])
	require.Equal(t, []string{"auth.krgeobuk.com"}, auth.Spec.TLS[0].Hosts)
	routes := map[string]string{}
	for _, p := range auth.Spec.Rules[0].HTTP.Paths {
		routes[p.Path] = p.Backend.Service.Name
	}
	require.Equal(t, map[string]string{"/api": "auth-server", "/": "auth-client"}, routes)

	// An extra host renders as its own Ingress (a disabled backend is refused: TestAppsRejectBadValues).
	withAPIHost := chartstest.Set("ingress.hosts", []any{
		map[string]any{"host": "portal.krgeobuk.com", "routes": []any{
			map[string]any{"path": "/", "service": "portal-client"},
			map[string]any{"path": "/api", "service": "authz-server"}}},
		map[string]any{"host": "api.krgeobuk.com", "routes": []any{
			map[string]any{"path": "/", "service": "authz-server"}}},
	})
	res = chartstest.MustRender(t, "production", withAPIHost)
	require.NotNil(t, find[*networkingv1.Ingress](res, "api-krgeobuk-com"))
}

// The api host renders only where a gateway Service is named: then its Ingress sends the whole
// host to the gateway, and the APIs (not the SPAs) admit the gateway's pods on their HTTP port.
func TestAppsAPIGateway(t *testing.T) {
	for _, env := range []string{"development", "staging", "production"} {
		res := chartstest.MustRender(t, env)
		for _, o := range res.Objects {
			if ing, ok := o.Typed.(*networkingv1.Ingress); ok {
				require.NotRegexp(t, `^api-`, ing.Name, "%s: no gateway, no api host", env)
			}
		}
		require.NotContains(t, res.Notes, "API gateway", env)
	}

	gw := chartstest.Set("ingress.apiGateway", map[string]any{"service": "krgeobuk-gateway", "port": 8080,
		"podLabels": map[string]any{"app.kubernetes.io/name": "krgeobuk-gateway"}})
	res := chartstest.MustRender(t, "production", gw)
	ing := find[*networkingv1.Ingress](res, "api-krgeobuk-com")
	require.NotNil(t, ing)
	require.Equal(t, "letsencrypt-prod", ing.Annotations["cert-manager.io/cluster-issuer"])
	require.Equal(t, "api-krgeobuk-com-tls", ing.Spec.TLS[0].SecretName)
	path := ing.Spec.Rules[0].HTTP.Paths[0]
	require.Equal(t, "/", path.Path)
	require.Equal(t, "krgeobuk-gateway", path.Backend.Service.Name)
	require.EqualValues(t, 8080, path.Backend.Service.Port.Number)
	require.Contains(t, res.Notes, "https://api.krgeobuk.com (the API gateway, Service krgeobuk-gateway)")

	admitsGateway := func(name string) bool {
		np := find[*networkingv1.NetworkPolicy](res, name)
		require.NotNil(t, np, name)
		for _, r := range np.Spec.Ingress {
			for _, f := range r.From {
				if f.PodSelector != nil && f.NamespaceSelector == nil && f.PodSelector.MatchLabels["app.kubernetes.io/name"] == "krgeobuk-gateway" {
					require.Equal(t, 8000, r.Ports[0].Port.IntValue(), "%s: the HTTP port only", name)
					require.Len(t, r.Ports, 1, "%s: the HTTP port only", name)
					return true
				}
			}
		}
		return false
	}
	require.True(t, admitsGateway("auth-server"))
	require.True(t, admitsGateway("authz-server"))
	require.False(t, admitsGateway("auth-client"), "the gateway fronts the APIs, not the SPAs")

	staging := chartstest.MustRender(t, "staging", gw)
	require.NotNil(t, find[*networkingv1.Ingress](staging, "api-staging-krgeobuk-com"), "each environment's own api host")
}

// Broken values fail the render with a message that names the value and the rule.
func TestAppsRejectBadValues(t *testing.T) {
	portalServer := chartstest.Set("ingress.hosts", []any{map[string]any{"host": "portal.krgeobuk.com", "routes": []any{
		map[string]any{"path": "/api", "service": "portal-server"}}}})
	tests := []struct {
		name    string
		env     string
		values  map[string]any
		wantErr []string
	}{
		{name: "latest tag", env: "development", values: chartstest.Set("services.auth-client.image.tag", "latest"),
			wantErr: []string{`services.auth-client.image.tag: "latest" is a floating tag; give a version or a digest`}},
		{name: "latest tag beside a digest", env: "production", values: chartstest.Set("services.auth-server.image.tag", "latest"),
			wantErr: []string{`services.auth-server.image.tag: "latest" is a floating tag; give a version or a digest`}},
		{name: "malformed digest", env: "production", values: chartstest.Set("services.auth-server.image.digest", "sha256:abc"),
			wantErr: []string{"services", "auth-server", "image", "digest"}},
		{name: "missing digest where digests are demanded", env: "production", values: chartstest.Set("services.portal-client.image.digest", ""),
			wantErr: []string{`services.portal-client.image.digest is required: environment "production" deploys images by digest only`}},
		{name: "staging may not allow tags", env: "staging", values: chartstest.Set("global.imagePolicy", "tag"),
			wantErr: []string{"global", "imagePolicy", "digest"}},
		{name: "data server address is not an IP", env: "staging", values: chartstest.Set("global.dataServer.address", "data.krgeobuk.com"),
			wantErr: []string{"global", "dataServer", "address"}},
		{name: "unbounded database wait", env: "staging", values: chartstest.Set("global.waitForDatabase.timeoutSeconds", 0),
			wantErr: []string{"waitForDatabase", "timeoutSeconds"}},
		{name: "misspelt service field", env: "staging", values: chartstest.Set("services.auth-server.replica", 3),
			wantErr: []string{"auth-server", "replica"}},
		{name: "secret literal in production", env: "production", values: chartstest.Set("services.auth-server.secret.create", true),
			wantErr: []string{"services.auth-server.secret.create: secret literals are refused in production"}},
		{name: "password in a ConfigMap", env: "staging", values: chartstest.Set("services.auth-server.config.MYSQL_PASSWORD", "x"),
			wantErr: []string{`services.auth-server.config.MYSQL_PASSWORD looks like a credential: a ConfigMap is readable by whoever may read ConfigMaps and Helm keeps it in the release record. Put it in the Secret "auth-server-secrets" (k8s/secrets/README.md) and remove it from config`}},
		{name: "setting the chart derives", env: "staging", values: chartstest.Set("services.authz-server.config.MYSQL_HOST", "10.0.0.1"),
			wantErr: []string{`services.authz-server.config.MYSQL_HOST: the chart sets it (from global.nodeEnv, ports and dataStores); remove it from config`}},
		{name: "passwords in values while the Secret is not created", env: "production",
			values:  chartstest.Set("services.auth-server.secret", map[string]any{"create": false, "values": map[string]any{"MYSQL_PASSWORD": "hunter2", "REDIS_PASSWORD": "x"}}),
			wantErr: []string{`services.auth-server.secret.values: MYSQL_PASSWORD, REDIS_PASSWORD given while secret.create is false, so nothing uses them; Helm would keep them in its release record. Remove secret.values and create the Secret "auth-server-secrets" out of band (k8s/secrets/README.md)`}},
		{name: "password in a pod annotation key", env: "staging", values: chartstest.Set("services.authz-server.podAnnotations", map[string]any{"db-password": "hunter2"}),
			wantErr: []string{`services.authz-server.podAnnotations.db-password looks like a credential: pod annotations are readable by whoever may list pods and are kept in the release record. Remove it; credentials belong in the Secret "authz-server-secrets" (k8s/secrets/README.md)`}},
		{name: "password in a pod annotation value", env: "development", values: chartstest.Set("services.auth-server.podAnnotations", map[string]any{"example.com/dsn": "mysql://app:password=hunter2@db"}),
			wantErr: []string{`services.auth-server.podAnnotations.example.com/dsn looks like a credential`}},
		{name: "route to a disabled service", env: "production", values: chartstest.Set("services.auth-client.enabled", false),
			wantErr: []string{`ingress host auth.krgeobuk.com path /: backend service "auth-client" is disabled (services.auth-client.enabled: false), so auth.krgeobuk.com/ would not be served. Enable the service or remove the route`}},
		{name: "seed defect: route to portal-server", env: "production", values: portalServer,
			wantErr: []string{`ingress host portal.krgeobuk.com path /api: backend "portal-server" is not a service of this chart`}},
		{name: "calls an unknown service", env: "staging", values: chartstest.Set("services.auth-server.calls", []any{"billing-server"}),
			wantErr: []string{`services.auth-server.calls: "billing-server" is not a service of this chart`}},
		{name: "store not on the data server", env: "staging", values: chartstest.Set("services.auth-server.stores", []any{"auth-postgres", "auth-redis"}),
			wantErr: []string{`services.auth-server.stores: "auth-postgres" is not in dataStores`}},
		{name: "gateway that is a chart service", env: "production", values: chartstest.Set("ingress.apiGateway", map[string]any{"service": "authz-server", "podLabels": map[string]any{"a": "b"}}),
			wantErr: []string{`ingress.apiGateway.service: "authz-server" is a service of this chart; the api host routes to a gateway deployed on its own. To serve a chart service on a host, add it to ingress.hosts`}},
		{name: "gateway without pod labels", env: "staging", values: chartstest.Set("ingress.apiGateway.service", "krgeobuk-gateway"),
			wantErr: []string{`ingress.apiGateway.podLabels: empty while ingress.apiGateway.service is "krgeobuk-gateway"; give the gateway pods' labels so the APIs' NetworkPolicies admit them`}},
		{name: "gateway on a host already served", env: "production", values: chartstest.Set("ingress.apiGateway", map[string]any{"host": "auth.krgeobuk.com", "service": "gw", "podLabels": map[string]any{"a": "b"}}),
			wantErr: []string{"ingress.apiGateway.host: auth.krgeobuk.com is also in ingress.hosts; one host, one Ingress"}},
		{name: "gateway Service name that is not a DNS label", env: "staging", values: chartstest.Set("ingress.apiGateway.service", "Gateway_1"),
			wantErr: []string{"ingress", "apiGateway", "service"}},
		{name: "pod label that would break the selector", env: "staging", values: chartstest.Set("services.auth-server.podLabels", map[string]any{"app.kubernetes.io/name": "x"}),
			wantErr: []string{"/services/auth-server/podLabels/app.kubernetes.io~1name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := chartstest.Env(t, tt.env)
			_, err := chartstest.Render(t, env, values.Merge(chartstest.DeployValues(env), tt.values))
			require.Error(t, err)
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// Development may render Secrets from literals, and the fault-stage hooks reach the pods.
func TestAppsDevelopmentExtras(t *testing.T) {
	res := chartstest.MustRender(t, "development", chartstest.Set("services.auth-server.podLabels", map[string]any{"testenv.krgeobuk.dev/fault": "crashloop"}),
		chartstest.Set("services.auth-server.nodeSelector", map[string]any{"pool": "none"}))
	sec := find[*corev1.Secret](res, "auth-server-secrets")
	require.NotNil(t, sec)
	require.ElementsMatch(t, []string{"MYSQL_USER", "MYSQL_PASSWORD", "REDIS_PASSWORD"}, keys(sec.StringData))
	require.Nil(t, find[*corev1.Secret](res, "auth-server-jwt"), "the JWT Secret is never rendered, not even in development")
	require.Contains(t, fmt.Sprint(find[*appsv1.Deployment](res, "auth-server").Spec.Template.Spec.Containers[0].EnvFrom), "auth-server-jwt", "the API reads it")
	d := find[*appsv1.Deployment](res, "auth-server")
	require.Equal(t, "crashloop", d.Spec.Template.Labels["testenv.krgeobuk.dev/fault"])
	require.Equal(t, map[string]string{"pool": "none"}, d.Spec.Template.Spec.NodeSelector)
	require.Equal(t, "ghcr.io/krgeobuk/auth-server@"+chartstest.Digest("auth-server"), d.Spec.Template.Spec.Containers[0].Image,
		"a digest wins over a tag even where tags are allowed")

	tagged := values.Merge(chartstest.Env(t, "development").Values, chartstest.Set("services.auth-server.image.tag", "1.4.2"))
	out, err := chartstest.Render(t, chartstest.Env(t, "development"), tagged)
	require.NoError(t, err)
	require.Equal(t, "ghcr.io/krgeobuk/auth-server:1.4.2", find[*appsv1.Deployment](out, "auth-server").Spec.Template.Spec.Containers[0].Image)
	require.Equal(t, "ghcr.io/krgeobuk/auth-client:1.0.0", find[*appsv1.Deployment](out, "auth-client").Spec.Template.Spec.Containers[0].Image,
		"without a tag the chart's appVersion is used")
}

// TestAppsNotesSayWhatWasRendered: the notes name each service's image as
// rendered and whether it is pinned by digest or runs a tag, not the
// environment's policy alone ("images by tag" while deploying digests).
func TestAppsNotesSayWhatWasRendered(t *testing.T) {
	dev := chartstest.Env(t, "development")
	tests := []struct {
		name   string
		env    string
		values map[string]any
		want   []string
	}{
		{name: "development by digest", env: "development", values: chartstest.DeployValues(dev), want: []string{
			"image policy: tags allowed",
			"auth-server (api): ghcr.io/krgeobuk/auth-server@" + chartstest.Digest("auth-server") + " (by digest)",
		}},
		{name: "development, one service by tag", env: "development",
			values: values.Merge(dev.Values, chartstest.Set("services.auth-server.image.tag", "1.4.2")), want: []string{
				"auth-server (api): ghcr.io/krgeobuk/auth-server:1.4.2 (by tag)",
				"auth-client (spa): ghcr.io/krgeobuk/auth-client:1.0.0 (by tag)",
			}},
		{name: "development with a canary and faults", env: "development",
			values: values.Merge(values.Merge(chartstest.DeployValues(dev), canary(1)), chartstest.Set("services.auth-server.canary.faults", map[string]any{"errorRatio": 0.5})), want: []string{
				"auth-server (api): ghcr.io/krgeobuk/auth-server@" + chartstest.Digest("auth-server") + " (by digest)",
				"    canary auth-server-canary, 1 pod(s) behind the same Service: ghcr.io/krgeobuk/auth-server@" + canaryDigest + " (by digest)",
				`    FAULT INJECTION is on (development only): canary {"errorRatio":0.5}`,
			}},
		{name: "production", env: "production", values: chartstest.DeployValues(chartstest.Env(t, "production")), want: []string{
			"image policy: digests only",
			"portal-client (spa): ghcr.io/krgeobuk/portal-client@" + chartstest.Digest("portal-client") + " (by digest)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := chartstest.Render(t, chartstest.Env(t, tt.env), tt.values)
			require.NoError(t, err)
			for _, w := range tt.want {
				require.Contains(t, res.Notes, w)
			}
			require.NotContains(t, res.Notes, "images by")
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
