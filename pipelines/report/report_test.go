package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

const (
	dbPassword = "hunter2-db-password"
	token      = "eyJhbGciOiJSUzI1NiJ9.kubeconfig-token"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: "` + token + `"}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`

// leaky is a result whose messages carry secrets the way real ones could:
// an API error quoting a Secret, an event, a response body.
func leaky() *report.Result {
	return &report.Result{
		Command: "deploy", Environment: "development", Namespace: "krgeobuk", Release: "krgeobuk-apps",
		Verdict: report.RolledBack, Summary: "revision 2 failed: password " + dbPassword + " rejected",
		Revision: 2, RolledBackTo: 1, RollbackRevision: 3,
		Services: []report.Service{{Name: "auth-server", Image: "r/auth-server@sha256:abc", Ready: 1, Desired: 1, Phase: "available", Readiness: "ready"}},
		Problems: []gate.Problem{{
			Class: gate.CrashLoop, Service: "auth-server", Pod: "auth-server-7d9-x", Container: "auth-server",
			Reason: "CrashLoopBackOff", Message: "Access denied for user 'krgeobuk'@'%' (using password: " + dbPassword + ")",
			Events: []string{"BackOff: Authorization: Bearer " + token},
		}},
		Steps:   []report.Step{{Name: "release", Status: "ok", Detail: "base64 " + "aHVudGVyMi1kYi1wYXNzd29yZA=="}},
		Notes:   []string{"note with \"" + dbPassword + "\" quoted"},
		History: []release.Revision{{Number: 1, Status: "superseded", Verified: true, Updated: time.Unix(1700000000, 0), Images: map[string]string{"auth-server": "r/auth-server@sha256:0123456789abcdef0123"}}},
		Error:   "Secret krgeobuk/auth-server-secrets: data.MYSQL_PASSWORD: " + dbPassword,
	}
}

func redactor() *report.Redactor {
	r := &report.Redactor{}
	r.Add(report.SecretsFromKubeconfig([]byte(kubeconfig))...)
	r.Add(report.SecretsFromValues(map[string]any{
		"services": map[string]any{"auth-server": map[string]any{
			"secret": map[string]any{"create": true, "existingSecret": "auth-server-secrets",
				"values": map[string]any{"MYSQL_PASSWORD": dbPassword}},
		}},
	})...)
	return r
}

func TestRenderingsNeverShowSecrets(t *testing.T) {
	renderers := map[string]func(*bytes.Buffer, *report.Result, *report.Redactor) error{
		"json":     func(b *bytes.Buffer, res *report.Result, r *report.Redactor) error { return report.JSON(b, res, r) },
		"table":    func(b *bytes.Buffer, res *report.Result, r *report.Redactor) error { return report.Table(b, res, r) },
		"markdown": func(b *bytes.Buffer, res *report.Result, r *report.Redactor) error { return report.Markdown(b, res, r) },
	}
	for name, render := range renderers {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, render(&b, leaky(), redactor()))
			out := b.String()
			for _, secret := range []string{dbPassword, token, "aHVudGVyMi1kYi1wYXNzd29yZA=="} {
				require.NotContains(t, out, secret, "%s output leaks a secret", name)
			}
			require.Contains(t, out, report.Redacted)
			// What is not secret stays readable, including the Secret's name.
			require.Contains(t, out, "auth-server-secrets")
			require.Contains(t, out, "auth-server-7d9-x")
			require.Contains(t, out, "CrashLoopBackOff")
		})
	}
}

func TestLogWriterRedacts(t *testing.T) {
	var b bytes.Buffer
	w := redactor().Writer(&b)
	_, err := w.Write([]byte("helm: applying Secret with MYSQL_PASSWORD=" + dbPassword + "\n"))
	require.NoError(t, err)
	require.Equal(t, "helm: applying Secret with MYSQL_PASSWORD="+report.Redacted+"\n", b.String())
}

func TestSecretsFromValues(t *testing.T) {
	got := report.SecretsFromValues(map[string]any{
		"global": map[string]any{"environment": "development", "apiToken": "t0k3n-value"},
		"services": map[string]any{"auth-server": map[string]any{
			"replicas": 1,
			"secret": map[string]any{"create": true, "existingSecret": "auth-server-secrets",
				"values": map[string]any{"MYSQL_USER": "krgeobuk_dev", "MYSQL_PASSWORD": "dev-only-password"}},
		}},
		"ingress": map[string]any{"hosts": []any{map[string]any{"tlsSecretName": "auth-tls", "host": "auth.example"}}},
	})
	require.ElementsMatch(t, []string{"t0k3n-value", "krgeobuk_dev", "dev-only-password"}, got)
}

func TestJSONShape(t *testing.T) {
	var b bytes.Buffer
	res := leaky()
	res.OK = res.Verdict.OK()
	res.Duration = report.Duration(1500 * time.Millisecond)
	require.NoError(t, report.JSON(&b, res, nil))
	var back map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, "rolled-back", back["verdict"])
	require.Equal(t, false, back["ok"])
	require.Equal(t, 1.5, back["duration"])
	require.EqualValues(t, 1, back["rolledBackTo"])
	problems := back["problems"].([]any)
	require.Equal(t, "CrashLoop", problems[0].(map[string]any)["class"])

	// A program reading the report gets the same result back.
	var typed report.Result
	require.NoError(t, json.Unmarshal(b.Bytes(), &typed))
	require.Equal(t, res.Duration, typed.Duration)
	require.Equal(t, res.Verdict, typed.Verdict)
	require.Equal(t, res.RolledBackTo, typed.RolledBackTo)
	require.Equal(t, res.Problems[0].Reason, typed.Problems[0].Reason)
	require.Error(t, json.Unmarshal([]byte(`{"duration":"1.5s"}`), &typed), "a duration is seconds")
}

func TestTableAndMarkdownTellTheStory(t *testing.T) {
	var table, md bytes.Buffer
	res := leaky()
	require.NoError(t, report.Table(&table, res, nil))
	require.NoError(t, report.Markdown(&md, res, nil))
	require.Contains(t, table.String(), "deploy development (release krgeobuk-apps, namespace krgeobuk): ROLLED-BACK")
	require.Contains(t, table.String(), "[CrashLoop] auth-server: pod auth-server-7d9-x container auth-server: CrashLoopBackOff")
	require.Contains(t, md.String(), "### ↩️ deploy `development`: rolled-back")
	require.Contains(t, md.String(), "| CrashLoop | auth-server | auth-server-7d9-x | auth-server | CrashLoopBackOff |")
	// Digests are shortened in the Markdown history, never in the table.
	require.Contains(t, md.String(), "auth-server: `r/auth-server@sha256:0123456789ab`")
	require.True(t, strings.Contains(table.String(), "r1 auth-server r/auth-server@sha256:0123456789abcdef0123"))
}

func TestVerdictOK(t *testing.T) {
	for v, ok := range map[report.Verdict]bool{
		report.Verified: true, report.Unchanged: true, report.Reported: true,
		report.RolledBack: false, report.RollbackFailed: false, report.Uninstalled: false,
		report.Failed: false, report.Refused: false, report.Cancelled: false,
	} {
		require.Equal(t, ok, v.OK(), v)
	}
}

// TestHistoryNamesRevisionsMadeOutsideThePipeline: a revision the pipeline
// did not make (helm rollback, helm upgrade) is shown as such in the table
// and in Markdown, never credited to whoever deployed before it.
func TestHistoryNamesRevisionsMadeOutsideThePipeline(t *testing.T) {
	res := &report.Result{Command: "history", Environment: "staging", Verdict: report.Reported, History: []release.Revision{
		{Number: 1, Status: "superseded", DeployedBy: "alice", Updated: time.Unix(1700000000, 0)},
		{Number: 2, Status: "deployed", Outside: true, Updated: time.Unix(1700000100, 0)},
	}}
	tests := []struct {
		name   string
		render func(*bytes.Buffer) error
		lines  []string
	}{
		{"table", func(b *bytes.Buffer) error { return report.Table(b, res, &report.Redactor{}) },
			[]string{"1  superseded  no  2023-11-14T22:13:20Z  alice", "2  deployed    no  2023-11-14T22:15:00Z  outside the pipeline"}},
		{"markdown", func(b *bytes.Buffer) error { return report.Markdown(b, res, &report.Redactor{}) },
			[]string{"| 1 | superseded | no | 2023-11-14T22:13:20Z | alice |", "| 2 | deployed | no | 2023-11-14T22:15:00Z | outside the pipeline |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, tt.render(&b))
			// Compare words, not the table's column padding.
			out := strings.Join(strings.Fields(b.String()), " ")
			for _, l := range tt.lines {
				require.Contains(t, out, strings.Join(strings.Fields(l), " "))
			}
			require.Equal(t, 1, strings.Count(b.String(), "alice"), "revision 2 must not be credited to alice")
		})
	}
	js, err := json.Marshal(res.History[1])
	require.NoError(t, err)
	require.Contains(t, string(js), `"outside":true`)
}

// TestLockStates: the table says whether the lock's holder is live, its
// lease expired, or its process is known to be gone.
func TestLockStates(t *testing.T) {
	exp := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		lock report.Lock
		want string
	}{
		{"live", report.Lock{Lease: "ns/l", Holder: "alice", Expires: exp, Live: true}, "lock ns/l: held by alice (live until 2026-12-06T03:00:00Z)"},
		{"expired", report.Lock{Lease: "ns/l", Holder: "alice", Expires: exp}, "lock ns/l: held by alice (expired)"},
		{"process gone", report.Lock{Lease: "ns/l", Holder: "alice", Expires: exp, Gone: "its process 42 on this host (vm) has exited"},
			"lock ns/l: held by alice (stale: its process 42 on this host (vm) has exited)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, report.Table(&b, &report.Result{Command: "status", Lock: &tt.lock}, &report.Redactor{}))
			require.Contains(t, b.String(), tt.want)
		})
	}
}

// The analysis shows, per service, the numbers next to the thresholds and
// the verdict; a service without data says so instead of a number, and an
// unchanged one is marked skipped.
func TestAnalysisRendering(t *testing.T) {
	ratio, p95 := 0.5, 0.004
	res := &report.Result{Command: "deploy", Environment: "staging", Verdict: report.RolledBack, Analysis: []report.Analysis{
		{Service: "auth-server", Revision: "5d8f7c9b4", Verdict: "fail", Requests: 240, MinRequests: 20, ErrorRatio: &ratio, MaxRatio: 0.05,
			P95Seconds: &p95, MaxP95: 1, Detail: "auth-server@5d8f7c9b4: FAIL after 3 looks",
			Samples: []report.AnalysisSample{{Elapsed: report.Duration(time.Second), Requests: 80, ErrorRatio: &ratio, P95Seconds: &p95}}},
		{Service: "authz-server", Revision: "6a7b8c9d1", Verdict: "no-data", Requests: 3, MinRequests: 20, MaxRatio: 0.05, MaxP95: 1,
			Detail: "no data: 3 requests, need 20"},
		{Service: "portal-client", Verdict: "skipped", Detail: "pod template unchanged since revision 4: not analysed"},
	}}
	var table, md bytes.Buffer
	require.NoError(t, report.Table(&table, res, nil))
	require.NoError(t, report.Markdown(&md, res, nil))
	for _, want := range []string{"ANALYSIS", "auth-server", "fail", "240 (min 20)", "0.5 > 0.05", "0.004s ≤ 1s",
		"authz-server", "no-data", "3 (min 20)", "- (max 0.05)", "no data: 3 requests, need 20", "skipped"} {
		require.Contains(t, table.String(), want)
	}
	for _, want := range []string{"#### Metric analysis", "| rollout | auth-server | `5d8f7c9b4` | fail | 240 (min 20) | 0.5 > 0.05 | 0.004s ≤ 1s | - | 1 |",
		"1.000s: 80 req, 5xx 0.5, p95 0.004"} {
		require.Contains(t, md.String(), want)
	}
}

// Each canary step's numbers, beside the stable pods' and the limits those
// set, in both renderings.
func TestCanaryStepsRendering(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	res := &report.Result{Command: "deploy", Environment: "staging", Verdict: report.RolledBack, Analysis: []report.Analysis{
		{Step: "canary 1/2: 1 pod beside 2", Service: "auth-server", Revision: "c4n4ry1", Verdict: "pass", Requests: 40, MinRequests: 20,
			ErrorRatio: f(0), MaxRatio: 0.05, P95Seconds: f(0.01), MaxP95: 1,
			Stable: &report.AnalysisStable{Revision: "st4bl31", Requests: 80, ErrorRatio: f(0.01), P95Seconds: f(0.012), MaxRatio: f(0.03), MaxP95: f(0.024)}},
		{Step: "canary 2/2: 1 pod beside 2", Service: "auth-server", Revision: "c4n4ry1", Verdict: "fail", Requests: 60, MinRequests: 20,
			ErrorRatio: f(0.5), MaxRatio: 0.05, P95Seconds: f(0.01), MaxP95: 1,
			Stable: &report.AnalysisStable{Revision: "st4bl31", Requests: 120, ErrorRatio: f(0), P95Seconds: f(0.012), MaxRatio: f(0.02), MaxP95: f(0.024)}},
	}}
	var table, md bytes.Buffer
	require.NoError(t, report.Table(&table, res, nil))
	require.NoError(t, report.Markdown(&md, res, nil))
	for _, want := range []string{"STEP", "canary 1/2: 1 pod beside 2", "canary 2/2: 1 pod beside 2", "0.5 > 0.05",
		"beside stable st4bl31: 120 req, 5xx 0 (canary ≤ 0.02), p95 0.012s (canary ≤ 0.024s)"} {
		require.Contains(t, table.String(), want)
	}
	require.Contains(t, md.String(), "| canary 2/2: 1 pod beside 2 | auth-server | `c4n4ry1` | fail | 60 (min 20) | 0.5 > 0.05 | 0.01s ≤ 1s | st4bl31: 120 req, 5xx 0 (canary ≤ 0.02), p95 0.012s (canary ≤ 0.024s) | 0 |")
}
