package policy_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// goodDeployment passes every rule; each case below breaks it in one way.
const goodDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: krgeobuk}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      initContainers:
        - name: wait
          image: ghcr.io/krgeobuk/api@sha256:0000000000000000000000000000000000000000000000000000000000000001
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      containers:
        - name: api
          image: ghcr.io/krgeobuk/api@sha256:0000000000000000000000000000000000000000000000000000000000000001
          env: [{name: LOG_LEVEL, value: info}]
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}
          livenessProbe: {httpGet: {path: /health, port: 8000}}
          readinessProbe: {httpGet: {path: /health/ready, port: 8000}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`

func decode(t *testing.T, docs ...string) []render.Object {
	t.Helper()
	objs, err := render.Decode(strings.Join(docs, "\n---\n"))
	require.NoError(t, err)
	return objs
}

func TestRules(t *testing.T) {
	prod := policy.Context{Environment: "production", RequireDigest: true}
	dev := policy.Context{Environment: "development"}
	tests := []struct {
		name string
		ctx  policy.Context
		docs []string
		want []string // "rule: object: message fragment"; empty means no violation
	}{
		{name: "good deployment", ctx: prod, docs: []string{goodDeployment}},
		{name: "tag where digest is demanded", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "api@sha256:0000000000000000000000000000000000000000000000000000000000000001\n          env", "api:1.2.3\n          env", 1)},
			want: []string{`image-digest: Deployment/krgeobuk/api: container api: image "ghcr.io/krgeobuk/api:1.2.3" is not pinned by digest`}},
		{name: "tag allowed in development", ctx: dev,
			docs: []string{strings.ReplaceAll(goodDeployment, "api@sha256:0000000000000000000000000000000000000000000000000000000000000001", "api:1.2.3")}},
		{name: "latest refused everywhere", ctx: dev,
			docs: []string{strings.Replace(goodDeployment, "api@sha256:0000000000000000000000000000000000000000000000000000000000000001\n          env", "api:latest\n          env", 1)},
			want: []string{`image-digest: Deployment/krgeobuk/api: container api: image "ghcr.io/krgeobuk/api:latest" uses a floating tag`}},
		{name: "no tag at all is latest", ctx: dev,
			docs: []string{strings.Replace(goodDeployment, "ghcr.io/krgeobuk/api@sha256:0000000000000000000000000000000000000000000000000000000000000001\n          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}\n          security", "localhost:5000/api\n          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}\n          security", 1)},
			want: []string{`image-digest: Deployment/krgeobuk/api: init container wait: image "localhost:5000/api" uses a floating tag`}},
		{name: "missing limits", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "          env: [{name: LOG_LEVEL, value: info}]\n          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}", "          resources: {requests: {cpu: 10m}}", 1)},
			want: []string{"resources: Deployment/krgeobuk/api: container api: missing requests.memory, limits.cpu, limits.memory"}},
		{name: "missing probes", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "          livenessProbe: {httpGet: {path: /health, port: 8000}}\n          readinessProbe: {httpGet: {path: /health/ready, port: 8000}}\n", "", 1)},
			want: []string{"probes: Deployment/krgeobuk/api: container api: no livenessProbe", "probes: Deployment/krgeobuk/api: container api: no readinessProbe"}},
		{name: "writable root and escalation", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n", "          securityContext: {allowPrivilegeEscalation: true, capabilities: {drop: [NET_RAW]}}\n", 1)},
			want: []string{
				"restricted-security: Deployment/krgeobuk/api: init container wait: allowPrivilegeEscalation must be false",
				"restricted-security: Deployment/krgeobuk/api: init container wait: capabilities must drop ALL",
				"restricted-security: Deployment/krgeobuk/api: init container wait: readOnlyRootFilesystem must be true"}},
		{name: "root pod without seccomp", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "{runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}", "{runAsUser: 0}", 1)},
			want: []string{
				"restricted-security: Deployment/krgeobuk/api: container api: runAsNonRoot must be true",
				"restricted-security: Deployment/krgeobuk/api: container api: seccompProfile must be RuntimeDefault",
				"restricted-security: Deployment/krgeobuk/api: init container wait: runAsNonRoot must be true",
				"restricted-security: Deployment/krgeobuk/api: init container wait: seccompProfile must be RuntimeDefault",
				"restricted-security: Deployment/krgeobuk/api: pod securityContext runs as uid 0"}},
		{name: "writable mount outside emptyDir", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "          env: [{name: LOG_LEVEL, value: info}]\n",
				"          env: [{name: LOG_LEVEL, value: info}]\n          volumeMounts: [{name: conf, mountPath: /etc/app}, {name: tmp, mountPath: /tmp}]\n", 1) +
				"      volumes: [{name: conf, configMap: {name: app}}, {name: tmp, emptyDir: {}}]\n"},
			want: []string{"restricted-security: Deployment/krgeobuk/api: container api: mounts /etc/app writable from a volume that is neither emptyDir nor a PVC"}},
		{name: "secret literal env in production", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "{name: LOG_LEVEL, value: info}", "{name: MYSQL_PASSWORD, value: hunter2}", 1)},
			want: []string{"no-secret-literals: Deployment/krgeobuk/api: container api: env MYSQL_PASSWORD is set to a literal"}},
		{name: "secret literal env tolerated in development", ctx: dev,
			docs: []string{strings.ReplaceAll(strings.Replace(goodDeployment, "{name: LOG_LEVEL, value: info}", "{name: MYSQL_PASSWORD, value: hunter2}", 1), "api@sha256:0000000000000000000000000000000000000000000000000000000000000001", "api:1")}},
		{name: "fault injection in production", ctx: prod,
			docs: []string{strings.Replace(goodDeployment, "{name: LOG_LEVEL, value: info}", "{name: FAULT_ERROR_RATIO, value: '0.5'}", 1)},
			want: []string{"no-fault-injection: Deployment/krgeobuk/api: container api: env FAULT_ERROR_RATIO injects faults; fault injection is for development only, never production"}},
		{name: "fault injection in staging", ctx: policy.Context{Environment: "staging", RequireDigest: true},
			docs: []string{strings.Replace(goodDeployment, "{name: LOG_LEVEL, value: info}", "{name: FAULT_DELAY_MS, value: '800'}", 1)},
			want: []string{"no-fault-injection: Deployment/krgeobuk/api: container api: env FAULT_DELAY_MS injects faults"}},
		{name: "fault injection in development", ctx: dev,
			docs: []string{strings.ReplaceAll(strings.Replace(goodDeployment, "{name: LOG_LEVEL, value: info}", "{name: FAULT_ERROR_RATIO, value: '0.5'}", 1), "api@sha256:0000000000000000000000000000000000000000000000000000000000000001", "api:1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Check(tt.ctx, decode(t, tt.docs...))
			require.Len(t, got, len(tt.want), "violations: %v", got)
			for i, w := range tt.want {
				require.Contains(t, got[i].String(), w)
			}
		})
	}
}

const (
	svcAuthClient = `apiVersion: v1
kind: Service
metadata: {name: auth-client, namespace: krgeobuk}
spec: {selector: {app: auth-client}, ports: [{name: http, port: 80, targetPort: 8080}]}`
	ingressTo = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: NS}
spec:
  rules:
    - host: auth.krgeobuk.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: SVC, port: {name: PORT}}}}`
)

func ingress(ns, svc, port string) string {
	return strings.NewReplacer("NS", ns, "SVC", svc, "PORT", port).Replace(ingressTo)
}

func TestIngressBackend(t *testing.T) {
	tests := []struct {
		name string
		docs []string
		want string
	}{
		{name: "backend in the same namespace", docs: []string{svcAuthClient, ingress("krgeobuk", "auth-client", "http")}},
		{name: "seed defect: Ingress in krgeobuk points at grafana in monitoring",
			docs: []string{svcAuthClient, ingress("krgeobuk", "grafana", "http"),
				"apiVersion: v1\nkind: Service\nmetadata: {name: grafana, namespace: monitoring}\nspec: {selector: {app: grafana}, ports: [{name: http, port: 80}]}"},
			want: `ingress-backend: Ingress/krgeobuk/web: backend Service "grafana" is not rendered in namespace "krgeobuk"`},
		{name: "seed defect: route to a portal-server that does not exist",
			docs: []string{svcAuthClient, ingress("krgeobuk", "portal-server", "http")},
			want: `ingress-backend: Ingress/krgeobuk/web: backend Service "portal-server" is not rendered`},
		{name: "wrong port name", docs: []string{svcAuthClient, ingress("krgeobuk", "auth-client", "https")},
			want: `ingress-backend: Ingress/krgeobuk/web: backend Service "auth-client" has no port "https"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Check(policy.Context{Environment: "production", RequireDigest: true}, decode(t, tt.docs...))
			if tt.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%v", got)
			require.Contains(t, got[0].String(), tt.want)
		})
	}
}

func netpol(egress string) string {
	return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: krgeobuk}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Egress]
  egress:
` + egress
}

func TestEgressDNS(t *testing.T) {
	const dbOnly = "    - to: [{ipBlock: {cidr: 10.0.0.5/32}}]\n      ports: [{port: 3307, protocol: TCP}, {port: 6380, protocol: TCP}]\n"
	const dns = "    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n"
	tests := []struct {
		name, egress, want string
	}{
		{name: "database and DNS", egress: dbOnly + dns},
		{name: "seed defect: database ports only", egress: dbOnly,
			want: "egress-dns: NetworkPolicy/krgeobuk/api: restricts egress but does not allow DNS (port 53 UDP, TCP)"},
		{name: "DNS over UDP only", egress: dbOnly + "    - ports: [{port: 53, protocol: UDP}]\n",
			want: "egress-dns: NetworkPolicy/krgeobuk/api: restricts egress but does not allow DNS (port 53 TCP)"},
		{name: "deny all egress", egress: "    []\n",
			want: "egress-dns: NetworkPolicy/krgeobuk/api: restricts egress but does not allow DNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := netpol(tt.egress)
			if strings.HasSuffix(tt.egress, "[]\n") {
				doc = strings.Replace(doc, "  egress:\n    []\n", "  egress: []\n", 1)
			}
			got := policy.Check(policy.Context{Environment: "production"}, decode(t, doc))
			if tt.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%v", got)
			require.Contains(t, got[0].String(), tt.want)
		})
	}
}

const externalService = `apiVersion: v1
kind: Service
metadata: {name: auth-mysql, namespace: krgeobuk}
spec: {ports: [{name: mysql, port: 3307, targetPort: 3307}]}`

func slice(addr, portName, managedBy string) string {
	return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: auth-mysql-1
  namespace: krgeobuk
  labels: {kubernetes.io/service-name: auth-mysql, endpointslice.kubernetes.io/managed-by: ` + managedBy + `}
addressType: IPv4
ports: [{name: ` + portName + `, port: 3307}]
endpoints: [{addresses: [` + addr + `]}]`
}

func TestExternalEndpoints(t *testing.T) {
	tests := []struct {
		name string
		docs []string
		want []string
	}{
		{name: "service with its slice", docs: []string{externalService, slice("10.0.0.5", "mysql", "krgeobuk")}},
		{name: "no slice", docs: []string{externalService},
			want: []string{"external-endpoints: Service/krgeobuk/auth-mysql: selector-less Service has no EndpointSlice"}},
		{name: "slice without address and wrong port", docs: []string{externalService,
			strings.Replace(slice("10.0.0.5", "db", "krgeobuk"), "endpoints: [{addresses: [10.0.0.5]}]", "endpoints: []", 1)},
			want: []string{
				"external-endpoints: Service/krgeobuk/auth-mysql: its EndpointSlices hold no address",
				`external-endpoints: Service/krgeobuk/auth-mysql: port "mysql" (3307) has no matching EndpointSlice port`}},
		{name: "slice claimed by the controller", docs: []string{externalService, slice("10.0.0.5", "mysql", "endpointslice-controller.k8s.io")},
			want: []string{"external-endpoints: Service/krgeobuk/auth-mysql: EndpointSlice auth-mysql-1 claims the EndpointSlice controller"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Check(policy.Context{Environment: "staging"}, decode(t, tt.docs...))
			require.Len(t, got, len(tt.want), "%v", got)
			for i, w := range tt.want {
				require.Contains(t, got[i].String(), w)
			}
		})
	}
}

func TestSecretObjects(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: auth-server-secrets, namespace: krgeobuk}\nstringData: {MYSQL_PASSWORD: hunter2}"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: auth-server-config, namespace: krgeobuk}\ndata: {REDIS_PASSWORD: hunter2, LOG_LEVEL: info}"
	got := policy.Check(policy.Context{Environment: "staging"}, decode(t, secret, cm))
	require.Len(t, got, 2, "%v", got)
	require.Contains(t, got[0].String(), "no-secret-literals: ConfigMap/krgeobuk/auth-server-config: key REDIS_PASSWORD looks like a credential")
	require.Contains(t, got[1].String(), "no-secret-literals: Secret/krgeobuk/auth-server-secrets: renders 1 secret value(s) into the manifest in staging")
	for _, v := range got {
		require.NotContains(t, v.String(), "hunter2", "a violation must never quote the secret")
	}
	require.Empty(t, policy.Check(policy.Context{Environment: "development"}, decode(t, secret, cm)))
}

func TestDeployerCanApply(t *testing.T) {
	objs := decode(t, goodDeployment, externalService, slice("10.0.0.5", "mysql", "krgeobuk"))
	full := &rbacv1.Role{}
	full.Namespace, full.Name = "krgeobuk", "deployer"
	full.Rules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets", "services"}, Verbs: []string{"*"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"*"}},
	}
	require.Empty(t, policy.DeployerCanApply(full, objs))

	partial := full.DeepCopy()
	partial.Rules = partial.Rules[:2]
	partial.Rules[1].Verbs = []string{"get", "list", "create", "update", "patch"}
	got := policy.DeployerCanApply(partial, objs)
	require.Len(t, got, 2, "%v", got)
	require.Equal(t, "deployer-rbac: Role/krgeobuk/deployer: cannot delete deployments.apps (needed for Deployment/krgeobuk/api)", got[0].String())
	require.Equal(t, "deployer-rbac: Role/krgeobuk/deployer: cannot get/list/create/update/patch/delete endpointslices.discovery.k8s.io (needed for EndpointSlice/krgeobuk/auth-mysql-1)", got[1].String())
}

func TestErrorListsEveryViolation(t *testing.T) {
	require.NoError(t, policy.Error(nil))
	err := policy.Error([]policy.Violation{
		{Rule: "probes", Object: "Deployment/krgeobuk/api", Message: "container api: no livenessProbe"},
		{Rule: "resources", Object: "Deployment/krgeobuk/api", Message: "container api: missing limits.cpu"},
	})
	require.EqualError(t, err, "2 policy violation(s):\nprobes: Deployment/krgeobuk/api: container api: no livenessProbe\nresources: Deployment/krgeobuk/api: container api: missing limits.cpu")
}
