package deploy_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// In an environment that requires signatures (staging and production do),
// preflight refuses an unsigned image and one signed with a key the
// environment does not accept, before the lock is taken or a Helm revision
// exists, naming the service, the digest and the reason in every rendering
// of the report; a properly signed set deploys.
func TestSignaturesAreVerifiedBeforeDeploy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key, err := deploytest.NewKey("cosign.pub")
	require.NoError(t, err)
	other, err := deploytest.NewKey("other.pub")
	require.NoError(t, err)
	f.env.Signing = deploytest.Requiring(key)
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		// sign signs the images but authz-server's as the case wants.
		sign func(images map[string]string)
		want string
	}{
		{"unsigned", func(images map[string]string) {}, "not signed: no signature referrer"},
		{"signed with another key", func(images map[string]string) {
			require.NoError(t, deploytest.Attest(ctx, map[string]string{"authz-server": images["authz-server"]}, other))
		}, "verifies with no accepted key (signed with another key, or altered)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images := f.publish(strings.ReplaceAll(tc.name, " ", "-"))
			rest := map[string]string{}
			for s, ref := range images {
				if s != "authz-server" {
					rest[s] = ref
				}
			}
			require.NoError(t, deploytest.Attest(ctx, rest, key))
			tc.sign(images)

			d := f.deployer("ci")
			res := d.Deploy(ctx, deploy.Request{Images: images})
			deploytest.RequireVerdict(t, report.Refused, res)
			step := res.Steps[len(res.Steps)-1]
			require.Equal(t, "preflight/signatures", step.Name)
			require.Equal(t, "failed", step.Status)
			require.Contains(t, res.Error, "service authz-server: image "+images["authz-server"]+": ")
			require.Contains(t, res.Error, tc.want)
			require.NotContains(t, res.Error, "service auth-server", "the signed images pass")
			require.Empty(t, f.history(d), "no Helm revision was created")
			_, err := f.cs.CoordinationV1().Leases(f.env.Namespace).Get(ctx, deploy.LockName, metav1.GetOptions{})
			require.Error(t, err, "the lock was never taken")

			for name, render := range map[string]func(*bytes.Buffer) error{
				"json":     func(b *bytes.Buffer) error { return report.JSON(b, res, d.Redactor()) },
				"table":    func(b *bytes.Buffer) error { return report.Table(b, res, d.Redactor()) },
				"markdown": func(b *bytes.Buffer) error { return report.Markdown(b, res, d.Redactor()) },
			} {
				var b bytes.Buffer
				require.NoError(t, render(&b), name)
				for _, s := range []string{"authz-server", images["authz-server"], tc.want} {
					require.Contains(t, b.String(), s, "%s rendering names the service, the digest and the reason", name)
				}
			}
		})
	}

	t.Run("signed", func(t *testing.T) {
		images := f.publish("signed")
		require.NoError(t, deploytest.Attest(ctx, images, key))
		d := f.deployer("ci")
		res := d.Deploy(ctx, deploy.Request{Images: images})
		deploytest.RequireVerdict(t, report.Verified, res)
		var step *report.Step
		for i := range res.Steps {
			if res.Steps[i].Name == "preflight/signatures" {
				step = &res.Steps[i]
			}
		}
		require.NotNil(t, step)
		require.Equal(t, "4 images signed for their digests (4 with cosign.pub), each with its SBOM", step.Detail)
	})
}
