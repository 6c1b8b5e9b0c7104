package realnodetest_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/internal/realnodetest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

func TestMain(m *testing.M) { os.Exit(realnode.Main(m)) }

// world is one test's slice of the real node: the bootstrap of an
// environment in a namespace of its own, the deployer's kubeconfig, the
// data stores on the data-server address, the example images in the node's
// registry.
type world struct {
	t     testing.TB
	c     *realnode.Cluster
	admin kubernetes.Interface
	env   *environment.Environment
	ns    string
	// kc authenticates as the namespace's deployer ServiceAccount; token is
	// its bearer token (for redaction checks).
	kc    []byte
	token string
	// images are the example images pushed for each service, by digest.
	images map[string]string
	mysql  map[string]*dbtest.MariaDB // by store name (auth-mysql, ...)
	redis  map[string]*dbtest.Redis
	// values point the chart at the stores: the data-server address and
	// each store's port.
	values map[string]any
	log    *deploytest.Log
}

var nsChars = regexp.MustCompile(`[^a-z0-9-]+`)

// newWorld bootstraps environment envName (k8s/environments/<env>) into a
// namespace named after the test, as the admin would once per cluster, and
// starts the stores its APIs use.
func newWorld(t testing.TB, envName string) *world {
	t.Helper()
	c := realnode.Shared(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	env, err := environment.Load(k8s.Environments, envName)
	require.NoError(t, err)
	ns := strings.Trim(nsChars.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "-"), "-")
	if len(ns) > 50 {
		ns = strings.Trim(ns[:50], "-")
	}
	env.Namespace = ns
	// Real pods start in seconds; these bound a broken test, not a healthy one.
	env.Gates.RolloutTimeout = 3 * time.Minute
	env.Gates.ReadinessTimeout = 45 * time.Second
	// Staging's and production's metric analysis needs a Prometheus and
	// traffic this world does not have; these tests prove the chart on real
	// pods, so the analysis gate is off here (a test that proves it turns
	// it on with its own Prometheus).
	env.Analysis = nil
	w := &world{t: t, c: c, admin: admin, env: env, ns: ns, log: &deploytest.Log{}}
	w.bootstrap(ctx, envName)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deploy log:\n%s", w.log.String())
		}
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	// the deployer ServiceAccount's token, as a CI job's kubeconfig holds it
	w.kc, w.token, err = w.c.ServiceAccountKubeconfig(ctx, w.ns, "krgeobuk-deployer", time.Hour)
	require.NoError(t, err)
	st := realnodetest.StartDataServer(t, c, admin, envName, ns)
	w.mysql, w.redis, w.values = st.MySQL, st.Redis, st.Values
	w.images = pushExamples(t, c)
	if env.Signing != nil && env.Signing.Required {
		// Staging and production accept only their committed keys, whose private halves this
		// repository never holds: the world signs its images with a key of its own and
		// accepts that one, so preflight/signatures runs on the way to real pods too.
		key, err := deploytest.NewKey("cosign.pub")
		require.NoError(t, err)
		env.Signing = deploytest.Requiring(key)
		require.NoError(t, deploytest.Attest(ctx, w.images, key))
	}
	return w
}

// bootstrap applies what `kubectl apply -k k8s/environments/<env>` creates
// for the apps namespace, with that namespace renamed to the test's own:
// the Namespace (Pod Security "restricted" enforced), the deployer's
// ServiceAccount, Role and RoleBinding, the ResourceQuota and LimitRange.
func (w *world) bootstrap(ctx context.Context, envName string) {
	t := w.t
	objs := realnodetest.Bootstrap(t, envName)
	var err error
	const appsNS = "krgeobuk"
	applied := map[string]int{}
	for _, o := range objs {
		switch x := o.Typed.(type) {
		case *corev1.Namespace:
			if x.Name != appsNS {
				continue
			}
			n := x.DeepCopy()
			n.Name = w.ns
			_, err = w.admin.CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			if x.Namespace != appsNS {
				continue
			}
			sa := x.DeepCopy()
			sa.Namespace = w.ns
			_, err = w.admin.CoreV1().ServiceAccounts(w.ns).Create(ctx, sa, metav1.CreateOptions{})
		case *rbacv1.Role:
			if x.Namespace != appsNS {
				continue
			}
			r := x.DeepCopy()
			r.Namespace = w.ns
			_, err = w.admin.RbacV1().Roles(w.ns).Create(ctx, r, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			if x.Namespace != appsNS {
				continue
			}
			b := x.DeepCopy()
			b.Namespace = w.ns
			for i := range b.Subjects {
				if b.Subjects[i].Namespace == appsNS {
					b.Subjects[i].Namespace = w.ns
				}
			}
			_, err = w.admin.RbacV1().RoleBindings(w.ns).Create(ctx, b, metav1.CreateOptions{})
		case *corev1.ResourceQuota:
			if x.Namespace != appsNS {
				continue
			}
			q := x.DeepCopy()
			q.Namespace = w.ns
			_, err = w.admin.CoreV1().ResourceQuotas(w.ns).Create(ctx, q, metav1.CreateOptions{})
		case *corev1.LimitRange:
			if x.Namespace != appsNS {
				continue
			}
			l := x.DeepCopy()
			l.Namespace = w.ns
			_, err = w.admin.CoreV1().LimitRanges(w.ns).Create(ctx, l, metav1.CreateOptions{})
		default:
			continue
		}
		require.NoError(t, err, o.Ref())
		applied[o.U.GetKind()]++
	}
	require.Equal(t, map[string]int{"Namespace": 1, "ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "ResourceQuota": 1, "LimitRange": 1}, applied,
		"the apps namespace's bootstrap")
}

// deployer is the gated deploy as the deployer ServiceAccount, with the
// default readiness path (a port-forward to each ready pod).
func (w *world) deployer() *deploy.Deployer {
	w.t.Helper()
	d, err := deploy.New(deploy.Config{
		Kubeconfig: w.kc, Env: w.env, Actor: "ci@realnode", Log: w.log,
		Registry: &registry.Resolver{},
	})
	require.NoError(w.t, err)
	return d
}

// with lays more values over the stores' ones, the way Helm layers values files.
func (w *world) with(more ...map[string]any) map[string]any {
	out := values.Merge(nil, w.values)
	for _, m := range more {
		out = values.Merge(out, m)
	}
	return out
}

var (
	examplesOnce sync.Once
	examples     map[exampleimages.Kind]v1.Image
	examplesErr  error
)

// pushExamples builds the example images once per test binary and pushes
// them to the node's registry under each service's repository.
func pushExamples(t testing.TB, c *realnode.Cluster) map[string]string {
	t.Helper()
	examplesOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			examplesErr = err
			return
		}
		repo, err := binaries.FindRepoRoot(wd)
		if err != nil {
			examplesErr = err
			return
		}
		examples, examplesErr = exampleimages.Build(context.Background(), exampleimages.Options{Repo: repo, Cache: binaries.DefaultCacheDir(), Log: os.Stderr})
	})
	require.NoError(t, examplesErr)
	byRepo := map[string]v1.Image{}
	for _, svc := range catalog.All() {
		kind := exampleimages.SPA
		if svc.IsAPI() {
			kind = exampleimages.API
		}
		byRepo["krgeobuk/"+svc.Name] = examples[kind]
	}
	refs, err := exampleimages.Push(context.Background(), c.Registry(), byRepo)
	require.NoError(t, err)
	out := map[string]string{}
	for _, svc := range catalog.All() {
		out[svc.Name] = refs["krgeobuk/"+svc.Name]
	}
	return out
}
