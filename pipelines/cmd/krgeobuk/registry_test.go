package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// The CLI against two real distribution registries (TLS from their own
// CAs, htpasswd): deploy's preflight and promote with a wrong password, no
// credentials, no CA and a CA file that is not PEM are refused before
// anything changes, saying which; with the right ones both go through. No
// password is in stdout, stderr, the JSON report or an error.
func TestRegistryLoginAndCAOnARealRegistry(t *testing.T) {
	c := testenv.Shared(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	for _, ns := range []string{"clipromote-regstage", "clipromote-regprod"} {
		_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	stageReg, prodReg := registrytest.Start(t), registrytest.Start(t)
	apps := deploytest.NewApps(cs)
	defer apps.Close()
	dir := promotionEnvironments(t, map[string]string{"regstage": stageReg.Host + "/krgeobuk", "regprod": prodReg.Host + "/production"})
	tmp := t.TempDir()
	file := func(name string, content []byte) string {
		p := filepath.Join(tmp, name)
		require.NoError(t, os.WriteFile(p, content, 0o600))
		return p
	}
	stagePW, prodPW := file("stage-password", []byte(stageReg.Password+"\n")), file("prod-password", []byte(prodReg.Password))
	wrongPW := file("wrong-password", []byte("not-"+stageReg.Password))
	bundle := file("ca-bundle.pem", append(append([]byte{}, stageReg.CAPEM...), prodReg.CAPEM...))
	notPEM := file("ca.txt", []byte("not a certificate\n"))
	stageCA := file("stage-ca.pem", stageReg.CAPEM)
	jsonFile := filepath.Join(tmp, "result.json")

	// The four services' images in stage's registry, by digest.
	pushCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var images []string
	for _, s := range catalog.Names() {
		img, err := random.Image(512, 1)
		require.NoError(t, err)
		d, err := img.Digest()
		require.NoError(t, err)
		ref := stageReg.Ref(t, "krgeobuk/"+s+"@"+d.String())
		require.NoError(t, remote.Write(ref, img, stageReg.Options(pushCtx)...))
		images = append(images, "--image", s+"="+ref.Name())
	}
	readiness := func(ns string) []string { return readinessArgs(ctx, t, apps, ns) }
	secrets := []string{stageReg.Password, prodReg.Password}
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		_ = os.Remove(jsonFile)
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		require.Equal(t, want, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		written, err := os.ReadFile(jsonFile)
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		for _, pw := range secrets {
			require.NotContains(t, out.String(), pw, "no password on stdout")
			require.NotContains(t, errb.String(), pw, "no password on stderr")
			require.NotContains(t, string(written), pw, "no password in the JSON report")
		}
		return out.String(), errb.String()
	}
	deployments := func(ns string) int {
		deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		return len(deps.Items)
	}

	deploy := append(append([]string{"deploy", "--env", "regstage", "--environments", dir, "--kubeconfig", c.KubeconfigPath(),
		"--json", jsonFile}, readiness("clipromote-regstage")...), images...)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "a wrong password", args: []string{"--username", stageReg.Username, "--password", "file:" + wrongPW, "--registry-ca", bundle},
			want: "registry " + stageReg.Host + ` refused the credentials of user "` + stageReg.Username + `" (HTTP 401)`},
		{name: "no credentials", args: []string{"--registry-ca", bundle},
			want: "registry " + stageReg.Host + " requires credentials: give --username and --password"},
		{name: "no CA", args: []string{"--username", stageReg.Username, "--password", "file:" + stagePW},
			want: "registry " + stageReg.Host + ": its TLS certificate is signed by an authority this pipeline does not trust; give the registry's CA with --registry-ca"},
		{name: "a CA file that is not PEM", args: []string{"--username", stageReg.Username, "--password", "file:" + stagePW, "--registry-ca", notPEM},
			want: "--registry-ca: no PEM certificate in it"},
	} {
		t.Run("deploy: "+tc.name, func(t *testing.T) {
			out, _ := cli(exitFailed, append(append([]string{}, deploy...), tc.args...)...)
			require.Contains(t, out, tc.want)
			require.Zero(t, deployments("clipromote-regstage"), "nothing deployed")
		})
	}
	out, _ := cli(exitOK, append(append([]string{}, deploy...), "--username", stageReg.Username, "--password", "file:"+stagePW, "--registry-ca", stageCA)...)
	require.Contains(t, out, "deploy regstage (release krgeobuk-apps, namespace clipromote-regstage): VERIFIED")

	// --signed-by: every image must be signed with that key and carry an SBOM
	// (on this registry: the referrers' tag schema), checked at preflight.
	byService := map[string]string{}
	for i := 1; i < len(images); i += 2 {
		svc, ref, _ := strings.Cut(images[i], "=")
		byService[svc] = ref
	}
	key, err := deploytest.NewKey("ci.pub")
	require.NoError(t, err)
	other, err := deploytest.NewKey("other.pub")
	require.NoError(t, err)
	signedBy := append(append([]string{}, deploy...), "--username", stageReg.Username, "--password", "file:"+stagePW,
		"--registry-ca", stageCA, "--signed-by", file("ci.pub", key.Public.PEM))
	out, _ = cli(exitFailed, signedBy...)
	require.Contains(t, out, "not signed: no signature referrer")
	require.NoError(t, deploytest.Attest(ctx, byService, other, stageReg.Options(ctx)...))
	out, _ = cli(exitFailed, signedBy...)
	require.Contains(t, out, "verifies with no accepted key (signed with another key, or altered)")
	require.NoError(t, deploytest.Attest(ctx, byService, key, stageReg.Options(ctx)...))
	out, _ = cli(exitOK, signedBy...)
	require.Contains(t, out, "deploy regstage (release krgeobuk-apps, namespace clipromote-regstage): UNCHANGED", "the same images, now signed")
	require.Contains(t, out, "4 images signed for their digests (4 with --signed-by), each with its SBOM")

	promote := append([]string{"promote", "--from", "regstage", "--to", "regprod", "--environments", dir, "--kubeconfig", c.KubeconfigPath(),
		"--to-kubeconfig", c.KubeconfigPath(), "--source-username", stageReg.Username, "--source-password", "file:" + stagePW,
		"--registry-ca", bundle}, readiness("clipromote-regprod")...)
	inProd := func() int {
		n := 0
		for i := 1; i < len(images); i += 2 {
			_, ref, _ := strings.Cut(images[i], "=")
			d, err := name.NewDigest(ref)
			require.NoError(t, err)
			to := prodReg.Ref(t, "production/"+strings.TrimPrefix(d.Context().RepositoryStr(), "krgeobuk/")+"@"+d.DigestStr())
			if _, err := remote.Head(to, prodReg.Options(ctx)...); err == nil {
				n++
			}
		}
		return n
	}
	_, errs := cli(exitFailed, append(append([]string{}, promote...), "--username", prodReg.Username, "--password", "file:"+wrongPW)...)
	require.Contains(t, errs, "registry "+prodReg.Host+` refused the credentials of user "`+prodReg.Username+`" (HTTP 401)`)
	require.Zero(t, inProd(), "nothing copied")
	require.Zero(t, deployments("clipromote-regprod"), "nothing deployed")

	out, _ = cli(exitOK, append(append([]string{}, promote...), "--username", prodReg.Username, "--password", "file:"+prodPW)...)
	require.Contains(t, out, "deploy regprod (release krgeobuk-apps, namespace clipromote-regprod): VERIFIED")
	require.Equal(t, len(catalog.Names()), inProd(), "every image copied to prod's registry")
}
