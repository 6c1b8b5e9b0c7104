package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// promotionEnvironments writes two environments like development, each in
// its own namespace and deploying from its own repositories (repos maps the
// environment to a prefix: <prefix>/<service>), as staging and production
// should.
func promotionEnvironments(t *testing.T, repos map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := k8s.Environments.ReadFile("environments/development/krgeobuk-apps.values.yaml")
	require.NoError(t, err)
	for env, prefix := range repos {
		var values map[string]any
		require.NoError(t, yaml.Unmarshal(data, &values))
		services, _ := values["services"].(map[string]any)
		for _, s := range catalog.Names() {
			svc, _ := services[s].(map[string]any)
			if svc == nil {
				svc = map[string]any{}
			}
			svc["image"] = map[string]any{"repository": prefix + "/" + s}
			services[s] = svc
		}
		out, err := yaml.Marshal(values)
		require.NoError(t, err)
		envDir := filepath.Join(dir, "environments", env)
		require.NoError(t, os.MkdirAll(envDir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(envDir, "krgeobuk-apps.values.yaml"), out, 0o644))
		settings := "name: " + env + "\nnamespace: clipromote-" + env + "\nrelease: krgeobuk-apps\n" +
			"gates: {rolloutTimeout: 45s, readinessTimeout: 4s, unschedulableGrace: 3s}\nlock: {ttl: 10s}\n"
		require.NoError(t, os.WriteFile(filepath.Join(envDir, "environment.yaml"), []byte(settings), 0o644))
	}
	return dir
}

// Promotion takes what the source environment's current verified revision
// runs, copies it by digest to the target environment's own repositories
// and deploys the promoted references there. Named images that are not the
// verified digests, and a source whose current revision is not verified, are
// refused with nothing copied and nothing deployed.
func TestPromoteChecksCopiesAndDeploysThePromotedImages(t *testing.T) {
	c := testenv.Shared(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	for _, ns := range []string{"clipromote-stage", "clipromote-prod"} {
		_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	reg := deploytest.NewRegistry()
	defer reg.Close()
	apps := deploytest.NewApps(cs)
	defer apps.Close()
	prodRepo := reg.Host + "/production"
	dir := promotionEnvironments(t, map[string]string{"stage": reg.Host + "/krgeobuk", "prod": prodRepo})
	readiness := func(ns string) []string { return readinessArgs(ctx, t, apps, ns) }
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		require.Equal(t, want, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		for _, secret := range report.SecretsFromKubeconfig(c.Kubeconfig()) {
			if len(secret) >= 4 {
				require.NotContains(t, out.String()+errb.String(), secret, "no kubeconfig secret in the output")
			}
		}
		return out.String(), errb.String()
	}
	stage := append([]string{"--env", "stage", "--environments", dir, "--kubeconfig", c.KubeconfigPath()}, readiness("clipromote-stage")...)
	promote := append([]string{"promote", "--from", "stage", "--to", "prod", "--environments", dir, "--kubeconfig", c.KubeconfigPath(),
		"--to-kubeconfig", c.KubeconfigPath()}, readiness("clipromote-prod")...)
	promoted := func(ref string) name.Digest {
		d, err := name.NewDigest(ref)
		require.NoError(t, err)
		to, err := name.NewDigest(prodRepo + "/" + d.Context().RepositoryStr()[len("krgeobuk/"):] + "@" + d.DigestStr())
		require.NoError(t, err)
		return to
	}
	inProd := func(ref string) bool {
		_, err := remote.Head(promoted(ref))
		return err == nil
	}
	prodDeployments := func() int {
		deps, err := cs.AppsV1().Deployments("clipromote-prod").List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		return len(deps.Items)
	}
	images := func(refs map[string]string) []string {
		var args []string
		for svc, ref := range refs {
			args = append(args, "--image", svc+"="+ref)
		}
		return args
	}

	// stage: v1 verified (1); v2 crash-loops (2) and is rolled back (3, verified, v1's images).
	v1, err := reg.Publish("1.0.0")
	require.NoError(t, err)
	cli(exitOK, append(append([]string{"deploy"}, stage...), images(v1)...)...)
	v2, err := reg.Publish("2.0.0")
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("services:\n  auth-server:\n    podLabels:\n      "+testenv.FaultLabel+": crashloop\n"), 0o644))
	out, _ := cli(exitFailed, append(append([]string{"deploy", "--values", bad}, stage...), images(v2)...)...)
	require.Contains(t, out, "ROLLED-BACK")

	// Someone runs helm rollback to the crash-looping revision by hand: what
	// runs in stage (4) was never verified, so nothing is promoted.
	helmRollback(t, c.Kubeconfig(), "clipromote-stage", 2)
	_, errs := cli(exitFailed, promote...)
	require.Contains(t, errs, "the current revision is not verified: revision 4 (deployed, made outside the pipeline) runs now, the newest verified is revision 3")
	for svc := range v1 {
		require.False(t, inProd(v1[svc]), "%s: nothing copied", svc)
		require.False(t, inProd(v2[svc]), "%s: nothing copied", svc)
	}
	require.Zero(t, prodDeployments(), "nothing deployed")

	// Back to verified through the pipeline (5 runs v1, verified).
	cli(exitOK, append([]string{"rollback", "--revision", "3"}, stage...)...)

	// v2 was never verified in stage: refused naming the service and both digests.
	v2digest, v1digest := promoted(v2["auth-server"]).DigestStr(), promoted(v1["auth-server"]).DigestStr()
	_, errs = cli(exitFailed, append(promote, "--image", "auth-server="+v2["auth-server"])...)
	require.Contains(t, errs, "service auth-server: "+v2["auth-server"]+" is not verified in stage: its verified revision 5 runs "+v1digest+", not "+v2digest)
	require.False(t, inProd(v2["auth-server"]), "nothing copied")
	require.Zero(t, prodDeployments(), "nothing deployed")

	// The verified images: copied to prod's own repositories and deployed from there.
	out, _ = cli(exitOK, promote...)
	require.Contains(t, out, "promote stage -> prod: the images of stage's verified revision 5")
	require.Contains(t, out, "deploy prod (release krgeobuk-apps, namespace clipromote-prod): VERIFIED")
	for svc, ref := range v1 {
		to := promoted(ref)
		require.Contains(t, out, svc+" "+ref+" -> "+to.Name()+" (copied)")
		require.True(t, inProd(ref), "%s: prod's repository holds the digest", svc)
		dep, err := cs.AppsV1().Deployments("clipromote-prod").Get(ctx, svc, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, to.Name(), dep.Spec.Template.Spec.Containers[0].Image, "%s runs the promoted reference, not the source one", svc)
		require.False(t, strings.HasPrefix(dep.Spec.Template.Spec.Containers[0].Image, reg.Host+"/krgeobuk/"))
	}

	// One service moves on in stage (a partial deploy through the CLI), then
	// only it is promoted: a partial deploy in prod, the others kept.
	v3, err := reg.Publish("3.0.0", "authz-server")
	require.NoError(t, err)
	out, _ = cli(exitOK, append([]string{"deploy", "--service", "authz-server", "--image", "authz-server=" + v3["authz-server"]}, stage...)...)
	require.Contains(t, out, "auth-server kept at "+v1["auth-server"]+", as verified revision 5 runs it")
	out, _ = cli(exitOK, append(promote, "--image", "authz-server="+v3["authz-server"])...)
	require.Contains(t, out, "the images of stage's verified revision 6")
	require.Contains(t, out, "auth-server kept at "+promoted(v1["auth-server"]).Name()+", as verified revision 1 runs it")
	for svc, want := range map[string]string{"authz-server": promoted(v3["authz-server"]).Name(), "auth-server": promoted(v1["auth-server"]).Name()} {
		dep, err := cs.AppsV1().Deployments("clipromote-prod").Get(ctx, svc, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, want, dep.Spec.Template.Spec.Containers[0].Image, svc)
	}
}

// helmRollback rolls release krgeobuk-apps in ns back to rev with the Helm
// SDK, as `helm rollback` run by hand does: outside the pipeline.
func helmRollback(t *testing.T, kubeconfig []byte, ns string, rev int) {
	t.Helper()
	kc, err := kube.FromKubeconfig(kubeconfig, ns)
	require.NoError(t, err)
	cfg := new(action.Configuration)
	require.NoError(t, cfg.Init(kc.Getter(), ns, "secret", func(string, ...any) {}))
	rb := action.NewRollback(cfg)
	rb.Version = rev
	require.NoError(t, rb.Run("krgeobuk-apps"))
}

// readinessArgs are the --readiness-url flags that send each API's
// readiness check in namespace ns to its stand-in app.
func readinessArgs(ctx context.Context, t *testing.T, apps *deploytest.Apps, ns string) []string {
	t.Helper()
	var args []string
	for _, s := range catalog.All() {
		if s.IsAPI() {
			ep, err := apps.Readiness(ctx, ns, gate.APICheck(s))
			require.NoError(t, err)
			args = append(args, "--readiness-url", s.Name+"="+ep.URL)
		}
	}
	return args
}
