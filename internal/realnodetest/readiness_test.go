package realnodetest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// The readiness gate where it runs: the API server is not root on the node
// (as on managed clusters), so its traffic to pods is subject to the
// chart's NetworkPolicies. The API server's service proxy, the gate's old
// path, cannot reach a pod behind the chart's default-deny — shown here,
// and shown to be the policies' doing by removing them — while the gate's
// port-forward reaches every API through the same policies, as the
// deployer, without weakening them.
func TestReadinessGateGetsThroughThePolicies(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	res := w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()})
	deploytest.RequireVerdict(t, report.Verified, res)

	auth, _ := catalog.Lookup("auth-server")
	proxyCode := func() (int, error) {
		rc := w.c.RESTConfig()
		rc.Timeout = 15 * time.Second
		client, err := rest.HTTPClientFor(rc)
		require.NoError(t, err)
		url := fmt.Sprintf("%s/api/v1/namespaces/%s/services/auth-server:http/proxy%s", rc.Host, w.ns, auth.ReadinessPath)
		resp, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := proxyCode()
	require.True(t, err != nil || code >= 500, "the service proxy is blocked by default-deny: HTTP %d %v", code, err)

	// The deployer's own gate path, with only the deployer's rights.
	rc := restConfigOf(t, w.kc)
	err = gate.CheckReadiness(ctx, gate.PortForward{Config: rc}, gate.ReadinessOptions{
		Namespace: w.ns, Timeout: 30 * time.Second,
		Checks: []gate.Check{gate.APICheck(auth), gate.APICheck(mustLookup(t, "authz-server"))},
	})
	require.NoError(t, err, "the gate reaches both APIs through a port-forward")

	// Without the chart's policies, the same service-proxy request passes:
	// it was the policies that stopped it.
	pols, err := w.admin.NetworkingV1().NetworkPolicies(w.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, pols.Items)
	for _, p := range pols.Items {
		require.NoError(t, w.admin.NetworkingV1().NetworkPolicies(w.ns).Delete(ctx, p.Name, metav1.DeleteOptions{}))
	}
	var last error
	require.Eventually(t, func() bool {
		code, last = proxyCode()
		return last == nil && code == http.StatusOK
	}, time.Minute, time.Second, "service proxy without the policies: HTTP %d %v", code, last)
}

func mustLookup(t *testing.T, name string) catalog.Service {
	t.Helper()
	s, err := catalog.Lookup(name)
	require.NoError(t, err)
	return s
}

func restConfigOf(t *testing.T, kubeconfig []byte) *rest.Config {
	t.Helper()
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	require.NoError(t, err)
	return rc
}
