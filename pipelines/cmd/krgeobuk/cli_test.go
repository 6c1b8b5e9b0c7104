package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: krgeobuk <command>"},
		{[]string{"launch"}, `unknown command "launch"`},
		{[]string{"status"}, "--env is required"},
		{[]string{"history", "--env", "x", "extra"}, "unexpected arguments [extra]"},
		{[]string{"rollback", "--env", "x", "--image", "a=b"}, "flag provided but not defined: -image"},
		{[]string{"rollback", "--env", "x", "--to", "3"}, "flag provided but not defined: -to"},
		{[]string{"status", "--env", "x", "--output", "json"}, "flag provided but not defined: -output"},
		{[]string{"deploy", "--env", "x", "--password", "hunter22"}, "a secret is given as env:NAME or file:PATH, never in clear"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		require.Equal(t, exitUsage, run(context.Background(), tt.args, &out, &errb), tt.args)
		require.Contains(t, errb.String(), tt.want)
		require.Empty(t, out.String())
	}
}

// Bad input is a refused report on stdout (the same one the Dagger module
// returns: ci/doors_test.go), exit 1, with nothing read.
func TestBadInputIsARefusedReport(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--env", "qa", "--kubeconfig", "/dev/null"}, `environment "qa": unknown (known: [development production staging])`},
		{[]string{"deploy", "--env", "staging", "--kubeconfig", "/nonexistent", "--image", "auth-server"}, `--image "auth-server": want service=repository@sha256:...`},
		{[]string{"deploy", "--env", "staging", "--kubeconfig", "/nonexistent", "--image", "a=1", "--image", "a=2"}, "--image: service a given twice"},
		{[]string{"status", "--env", "staging", "--kubeconfig", "/nonexistent", "--format", "yaml"}, `--format "yaml": want one of table, markdown, json`},
		{[]string{"deploy", "--env", "staging", "--kubeconfig", "/nonexistent", "--image", "a=1", "--username", "ci-bot"}, "give both --username and --password, or neither"},
		{[]string{"rollback", "--env", "staging", "--kubeconfig", "/nonexistent", "--revision", "-1"}, "--revision -1: revisions start at 1"},
		{[]string{"history", "--env", "staging"}, "no kubeconfig: --kubeconfig is required"},
		{[]string{"status", "--env", "staging", "--stack", "logging", "--kubeconfig", "/nonexistent"}, `--stack "logging": want one of apps, monitoring`},
		{[]string{"deploy", "--env", "staging", "--kubeconfig", "/nonexistent", "--image", "a=1", "--prometheus-url", "prometheus:9090"},
			"--prometheus-url: want http://host:port or https://host:port"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		require.Equal(t, exitFailed, run(context.Background(), tt.args, &out, &errb), tt.args)
		require.Contains(t, out.String(), ": REFUSED\n")
		require.Contains(t, out.String(), "Refused before anything changed: "+tt.want)
		require.Empty(t, errb.String())
	}
}

// environmentDir writes an environment "clitest" like development, in its
// own namespace (the monitoring stack in ns-mon) with short gates.
func environmentDir(t *testing.T, ns string) string {
	dir := t.TempDir()
	envDir := filepath.Join(dir, "environments", "clitest")
	require.NoError(t, os.MkdirAll(envDir, 0o755))
	for _, f := range []string{"krgeobuk-apps.values.yaml", "monitoring-stack.values.yaml"} {
		values, err := k8s.Environments.ReadFile("environments/development/" + f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(envDir, f), values, 0o644))
	}
	settings := "name: clitest\nnamespace: " + ns + "\nrelease: krgeobuk-apps\nmonitoring: {namespace: " + ns + "-mon, release: monitoring}\n" +
		"gates: {rolloutTimeout: 45s, readinessTimeout: 4s, unschedulableGrace: 3s}\nlock: {ttl: 10s}\n"
	require.NoError(t, os.WriteFile(filepath.Join(envDir, "environment.yaml"), []byte(settings), 0o644))
	return dir
}

func TestDeployRollbackStatusHistory(t *testing.T) {
	c := testenv.Shared(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	const ns = "clitest"
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	reg := deploytest.NewRegistry()
	defer reg.Close()
	apps := deploytest.NewApps(cs)
	defer apps.Close()
	dir := environmentDir(t, ns)
	tmp := t.TempDir()

	common := []string{"--env", "clitest", "--environments", dir, "--kubeconfig", c.KubeconfigPath(), "--actor", "cli-test"}
	readiness := []string{}
	for _, s := range catalog.All() {
		if s.IsAPI() {
			ep, err := apps.Readiness(ctx, ns, gate.APICheck(s))
			require.NoError(t, err)
			readiness = append(readiness, "--readiness-url", s.Name+"="+ep.URL)
		}
	}
	images := func(version string) []string {
		refs, err := reg.Publish(version)
		require.NoError(t, err)
		var args []string
		for svc, ref := range refs {
			args = append(args, "--image", svc+"="+ref)
		}
		return args
	}
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		require.Equal(t, want, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		for _, secret := range append(report.SecretsFromKubeconfig(c.Kubeconfig()), "dev-only-password") {
			if len(secret) >= 4 {
				require.NotContains(t, out.String()+errb.String(), secret)
			}
		}
		return out.String(), errb.String()
	}
	jsonFile, mdFile := filepath.Join(tmp, "result.json"), filepath.Join(tmp, "summary.md")

	args := append(append(append([]string{"deploy"}, common...), readiness...), images("1.0.0")...)
	out, logs := cli(exitOK, append(args, "--json", jsonFile, "--markdown", mdFile)...)
	require.Contains(t, out, "deploy clitest (release krgeobuk-apps, namespace clitest): VERIFIED")
	require.Contains(t, logs, "gate/rollout auth-server")
	var res map[string]any
	data, err := os.ReadFile(jsonFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &res))
	require.Equal(t, "verified", res["verdict"])
	md, err := os.ReadFile(mdFile)
	require.NoError(t, err)
	require.Contains(t, string(md), "### ✅ deploy `clitest`: verified")

	// A crash-looping release: exit 1, rolled back, and the Markdown
	// summary is appended to, as CI step summaries are.
	valuesFile := filepath.Join(tmp, "bad.yaml")
	require.NoError(t, os.WriteFile(valuesFile, []byte("services:\n  auth-server:\n    podLabels:\n      "+testenv.FaultLabel+": crashloop\n"), 0o644))
	args = append(append(append([]string{"deploy"}, common...), readiness...), images("2.0.0")...)
	out, _ = cli(exitFailed, append(args, "--values", valuesFile, "--json", jsonFile, "--markdown", mdFile, "--format", "json")...)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "rolled-back", res["verdict"])
	require.EqualValues(t, 1, res["rolledBackTo"])
	md, err = os.ReadFile(mdFile)
	require.NoError(t, err)
	require.Contains(t, string(md), "### ✅ deploy `clitest`: verified")
	require.Contains(t, string(md), "### ↩️ deploy `clitest`: rolled-back")

	out, _ = cli(exitOK, append([]string{"status"}, common...)...)
	require.Contains(t, out, "Revision 3 is deployed and verified")
	out, _ = cli(exitOK, append([]string{"history", "--format", "markdown"}, common...)...)
	require.Contains(t, out, "| 2 | failed | no |")
	out, _ = cli(exitFailed, append(append([]string{"rollback", "--revision", "2"}, common...), readiness...)...)
	require.Contains(t, out, "revision 2 was never verified; pass --force")
	out, _ = cli(exitOK, append(append([]string{"rollback", "--revision", "1"}, common...), readiness...)...)
	require.Contains(t, out, "Rolled back to revision 1")
	require.True(t, strings.Contains(out, "VERIFIED"))

	// A deploy elsewhere holds the lock and renews it: refused, naming the
	// holder and the way out; --take-over-lock takes it deliberately.
	holdLock(ctx, t, cs, ns, "ci-job-on-another-runner")
	out, _ = cli(exitFailed, append(append([]string{"rollback", "--revision", "1"}, common...), readiness...)...)
	require.Contains(t, out, "ci-job-on-another-runner")
	require.Contains(t, out, "--take-over-lock")
	out, _ = cli(exitOK, append(append([]string{"rollback", "--revision", "1", "--take-over-lock"}, common...), readiness...)...)
	require.Contains(t, out, "took over the lock of \"ci-job-on-another-runner\"")
}

// holdLock makes holder the live holder of the deploy lock of ns, renewed
// now for a minute, as a deploy on another machine would.
func holdLock(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, holder string) {
	t.Helper()
	secs := int32(60)
	now := metav1.NewMicroTime(time.Now())
	spec := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now, AcquireTime: &now}
	leases := cs.CoordinationV1().Leases(ns)
	l, err := leases.Get(ctx, deploy.LockName, metav1.GetOptions{})
	if err == nil {
		l.Spec = spec
		l.Annotations = nil
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	} else {
		_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: deploy.LockName}, Spec: spec}, metav1.CreateOptions{})
	}
	require.NoError(t, err)
}

// TestMonitoringStack: the CLI deploys the monitoring stack with --stack monitoring (its images
// named by tag, pinned by digest), and reads its status and history, a release apart from the
// apps'.
func TestMonitoringStack(t *testing.T) {
	c := testenv.Shared(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	const ns = "clitest-stack"
	for _, n := range []string{ns, ns + "-mon"} {
		_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	reg := deploytest.NewRegistry()
	defer reg.Close()
	apps := deploytest.NewApps(cs)
	defer apps.Close()
	pub, err := reg.PublishTagged("1.0.0", "prometheus", "alertmanager", "grafana")
	require.NoError(t, err)

	common := []string{"--env", "clitest", "--stack", "monitoring", "--environments", environmentDir(t, ns), "--kubeconfig", c.KubeconfigPath()}
	args := append([]string{"deploy"}, common...)
	for _, w := range []struct{ component, service, path string }{
		{"prometheus", "monitoring-prometheus", "/-/ready"}, {"alertmanager", "monitoring-alertmanager", "/-/ready"}, {"grafana", "monitoring-grafana", "/api/health"},
	} {
		ep, err := apps.Readiness(ctx, ns+"-mon", gate.Check{Name: w.component, Service: w.service, Port: "http", Path: w.path})
		require.NoError(t, err)
		args = append(args, "--image", w.component+"="+pub[w.component].Tag, "--readiness-url", w.component+"="+ep.URL)
	}
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(ctx, args, &out, &errb), "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	require.Contains(t, out.String(), "deploy clitest (release monitoring, namespace clitest-stack-mon): VERIFIED")
	require.Contains(t, errb.String(), "gate/rollout prometheus")
	require.Contains(t, out.String(), pub["prometheus"].Digest, "the report shows the image pinned by digest")

	out.Reset()
	require.Equal(t, exitOK, run(ctx, append([]string{"status", "--format", "json"}, common...), &out, &errb))
	var st report.Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &st))
	require.Equal(t, "monitoring", st.Stack)
	require.Len(t, st.Services, 3)
	out.Reset()
	require.Equal(t, exitOK, run(ctx, append([]string{"history"}, common...), &out, &errb))
	require.Contains(t, out.String(), "1 revisions, 1 verified")

	out.Reset()
	require.Equal(t, exitOK, run(ctx, []string{"history", "--env", "clitest", "--environments", environmentDir(t, ns), "--kubeconfig", c.KubeconfigPath()}, &out, &errb))
	require.Contains(t, out.String(), "The release is not installed.", "the apps are another release")
}
