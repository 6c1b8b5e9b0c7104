package charts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/stackcheck"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/metricgate"
)

// e2eWait bounds every wait for an alert to fire or resolve: far above the
// short `for` windows the test sets through values (seconds), far below the
// test timeout.
const e2eWait = 45 * time.Second

// webhookSink records what Alertmanager delivers to a webhook receiver.
type webhookSink struct {
	mu    sync.Mutex
	posts []webhookPost
}

type webhookPost struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p webhookPost
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.posts = append(s.posts, p)
	s.mu.Unlock()
}

// received reports whether an alert with these labels arrived in status
// ("firing" or "resolved").
func (s *webhookSink) received(status string, labels map[string]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.posts {
		for _, a := range p.Alerts {
			if a.Status == status && matches(a.Labels, labels) {
				return true
			}
		}
	}
	return false
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// backupMetrics writes the backup job's textfile metrics atomically (temp +
// rename), as infrastructure/backup does.
func backupMetrics(t *testing.T, dir string, lastSuccess map[string]time.Time, verify map[string]int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# HELP krgeobuk_backup_last_success_timestamp_seconds Unix time of the last successful backup.\n")
	b.WriteString("# TYPE krgeobuk_backup_last_success_timestamp_seconds gauge\n")
	for _, store := range sortedStores(lastSuccess) {
		fmt.Fprintf(&b, "krgeobuk_backup_last_success_timestamp_seconds{store=%q} %d\n", store, lastSuccess[store].Unix())
	}
	b.WriteString("# HELP krgeobuk_backup_restore_verify_success Whether the newest backup restored and matched its source.\n")
	b.WriteString("# TYPE krgeobuk_backup_restore_verify_success gauge\n")
	for _, store := range sortedStores(verify) {
		fmt.Fprintf(&b, "krgeobuk_backup_restore_verify_success{store=%q} %d\n", store, verify[store])
	}
	tmp := filepath.Join(dir, ".krgeobuk_backup.prom.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(b.String()), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "krgeobuk_backup.prom")))
}

func sortedStores[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// firing returns the label sets of the firing alerts named name.
func firing(ctx context.Context, prom v1.API, name string) ([]model.LabelSet, error) {
	res, err := prom.Alerts(ctx)
	if err != nil {
		return nil, err
	}
	var out []model.LabelSet
	for _, a := range res.Alerts {
		if a.State == v1.AlertStateFiring && string(a.Labels["alertname"]) == name {
			out = append(out, a.Labels)
		}
	}
	return out, nil
}

// waitFor polls cond once a second until it holds, within e2eWait.
func waitFor(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := retry.Do(t.Context(), retry.WithMaxDuration(e2eWait, retry.NewConstant(500*time.Millisecond)), func(ctx context.Context) error {
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return retry.RetryableError(err)
		}
		if !ok {
			return retry.RetryableError(fmt.Errorf("not yet"))
		}
		return nil
	})
	require.NoError(t, err, "waiting %s for %s (last error: %v)", e2eWait, what, last)
}

func alertFiring(prom v1.API, name string, labels map[string]string) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		alerts, err := firing(ctx, prom, name)
		if err != nil {
			return false, err
		}
		for _, a := range alerts {
			have := map[string]string{}
			for k, v := range a {
				have[string(k)] = string(v)
			}
			if matches(have, labels) {
				return true, nil
			}
		}
		return false, nil
	}
}

// TestMonitoringStackEndToEnd runs the rendered chart's Prometheus
// configuration and rules, and its Alertmanager configuration, on the real
// programs against real MariaDB, Redis, exporters and an instrumented app,
// then breaks things and watches the alerts fire, reach Alertmanager's
// webhook receiver and resolve.
func TestMonitoringStackEndToEnd(t *testing.T) {
	ctx := t.Context()

	// The data server: two MySQL and two Redis instances, their exporters,
	// and the node exporter reading the backup job's textfile metrics.
	authMySQL := dbtest.StartMariaDB(t)
	authzMySQL := dbtest.StartMariaDB(t)
	authRedis := dbtest.StartRedis(t)
	authzRedis := dbtest.StartRedis(t)
	mysqld := promtest.StartMysqldExporter(t,
		promtest.MySQLTarget{AuthModule: "client.auth", User: authMySQL.User, Password: authMySQL.Password, Host: authMySQL.Host, Port: authMySQL.Port},
		promtest.MySQLTarget{AuthModule: "client.authz", User: authzMySQL.User, Password: authzMySQL.Password, Host: authzMySQL.Host, Port: authzMySQL.Port},
	)
	redisExp := promtest.StartRedisExporter(t, map[string]string{
		"redis://" + authRedis.Addr():  authRedis.Password,
		"redis://" + authzRedis.Addr(): authzRedis.Password,
	})
	textfiles := t.TempDir()
	now := time.Now()
	stores := map[string]time.Time{"auth-mysql": now, "authz-mysql": now, "auth-redis": now, "authz-redis": now}
	verified := map[string]int{"auth-mysql": 1, "authz-mysql": 1, "auth-redis": 1, "authz-redis": 1}
	backupMetrics(t, textfiles, stores, verified)
	node := promtest.StartNodeExporter(t, textfiles)

	// Three revisions of auth-server: healthy, failing and slow.
	apps := map[string]*promtest.App{}
	var staticConfigs []any
	for rev, mode := range map[string]promtest.Mode{"5d8f7c9b4": promtest.Healthy, "6a7b8c9d1": promtest.Failing, "7c6d5e4f2": promtest.Slow} {
		app := promtest.StartApp(t)
		app.SetMode(mode)
		apps[rev] = app
		staticConfigs = append(staticConfigs, map[string]any{
			"targets": []any{app.Addr()},
			"labels":  map[string]any{"service": "auth-server", "pod_template_hash": rev, "namespace": "krgeobuk", "pod": "auth-server-" + rev + "-x1"},
		})
	}
	driveCtx, stopDriving := context.WithCancel(ctx)
	var driving sync.WaitGroup
	for _, app := range apps {
		driving.Add(1)
		go func() {
			defer driving.Done()
			tick := time.NewTicker(100 * time.Millisecond) // pacing, ~80 requests/s per app at most
			defer tick.Stop()
			for {
				select {
				case <-driveCtx.Done():
					return
				case <-tick.C:
					_ = app.Drive(driveCtx, 8) // errors expected once an app is closed
				}
			}
		}()
	}
	t.Cleanup(func() { stopDriving(); driving.Wait() })

	// Alertmanager delivers to a webhook whose URL it reads from a file, as
	// it reads the mounted Secret in the cluster.
	sink := &webhookSink{}
	hook := httptest.NewServer(sink)
	t.Cleanup(hook.Close)
	secretDir := t.TempDir()
	urlFile := filepath.Join(secretDir, "webhook-url")
	require.NoError(t, os.WriteFile(urlFile, []byte(hook.URL+"/alerts"), 0o600))

	amPort := promtest.FreePort(t)
	vals := monEnvValues(t, "staging")
	for path, v := range map[string]any{
		"apps.discovery":                    "static",
		"apps.staticConfigs":                staticConfigs,
		"dataServer.address":                "127.0.0.1",
		"dataServer.exporters.node.port":    portOf(t, node.Addr),
		"dataServer.exporters.mysqld.port":  portOf(t, mysqld.Addr),
		"dataServer.exporters.redis.port":   portOf(t, redisExp.Addr),
		"prometheus.scrapeInterval":         "1s",
		"prometheus.scrapeTimeout":          "1s",
		"prometheus.evaluationInterval":     "1s",
		"prometheus.kubernetes.enabled":     false,
		"prometheus.alertmanagers":          []any{promtest.Addr(amPort)},
		"alerts.appDown.for":                "2s",
		"alerts.appAbsent.for":              "2s",
		"alerts.highErrorRate":              map[string]any{"ratio": 0.05, "window": "10s", "for": "2s"},
		"alerts.highLatency":                map[string]any{"p95Seconds": 0.2, "window": "10s", "for": "2s"},
		"alerts.exporterDown.for":           "2s",
		"alerts.storeDown.for":              "3s",
		"alerts.backupStale":                map[string]any{"maxAgeSeconds": 3600, "for": "1s"},
		"alerts.backupMissing.for":          "2s",
		"alerts.restoreVerifyFailed.for":    "1s",
		"alertmanager.route.receiver":       "test-webhook",
		"alertmanager.route.groupWait":      "1s",
		"alertmanager.route.groupInterval":  "1s",
		"alertmanager.route.repeatInterval": "1h",
		"alertmanager.receivers":            []any{map[string]any{"name": "test-webhook", "webhook": map[string]any{"urlFile": urlFile}}},
		"dataServer.stores": []any{
			map[string]any{"name": "auth-mysql", "engine": "mysql", "port": 3307, "target": authMySQL.Addr(), "authModule": "client.auth"},
			map[string]any{"name": "authz-mysql", "engine": "mysql", "port": 3308, "target": authzMySQL.Addr(), "authModule": "client.authz"},
			map[string]any{"name": "auth-redis", "engine": "redis", "port": 6380, "target": authRedis.Addr()},
			map[string]any{"name": "authz-redis", "engine": "redis", "port": 6381, "target": authzRedis.Addr()},
		},
	} {
		set(vals, path, v)
	}
	res := monMustRender(t, vals)
	files := monFiles(t, res)
	require.NoError(t, stackcheck.CheckPrometheus(files.PrometheusSource, files.Prometheus, files.Rules).Err())

	amDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(amDir, "alertmanager.yml"), []byte(files.Alertmanager), 0o644))
	am := promtest.StartAlertmanager(t, amDir, promtest.Addr(amPort))

	promDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(promDir, "prometheus.yml"), []byte(files.Prometheus), 0o644))
	for name, content := range files.Rules {
		require.NoError(t, os.WriteFile(filepath.Join(promDir, name), []byte(content), 0o644))
	}
	prom := promtest.StartPrometheus(t, promDir)
	client, err := api.NewClient(api.Config{Address: prom.URL})
	require.NoError(t, err)
	promAPI := v1.NewAPI(client)

	t.Run("every target is up", func(t *testing.T) {
		// The self-scrape job targets localhost:9090, the pod's port; the test
		// server listens elsewhere, so that job is left out here.
		want := map[string]int{"krgeobuk-apps": 3, "data-server-node": 1, "data-server-mysqld": 2, "data-server-redis": 2}
		waitFor(t, "all targets up", func(ctx context.Context) (bool, error) {
			tg, err := promAPI.Targets(ctx)
			if err != nil {
				return false, err
			}
			up := map[string]int{}
			for _, a := range tg.Active {
				if job := string(a.Labels["job"]); a.Health == v1.HealthGood && job != "prometheus" {
					up[job]++
				}
			}
			if fmt.Sprint(up) != fmt.Sprint(want) {
				return false, fmt.Errorf("healthy targets by job: %v, want %v", up, want)
			}
			return true, nil
		})
		for _, q := range []string{`mysql_up{job="data-server-mysqld"} == 1`, `redis_up{job="data-server-redis"} == 1`} {
			waitFor(t, q, func(ctx context.Context) (bool, error) {
				v, _, _, err := promAPI.Query(ctx, q, time.Now())
				if err != nil {
					return false, err
				}
				return len(v.(model.Vector)) == 2, nil
			})
		}
	})

	t.Run("dashboard queries answer", func(t *testing.T) {
		// Panels over gauges the targets just reported must show data; the
		// rest (rates before two scrapes, pods down, collectors the test
		// node exporter leaves off) must answer with a well-formed result.
		mustShow := map[string]bool{
			"Scrape targets up": true, "MySQL up": true, "Redis up": true, "MySQL connections": true,
			"Redis memory": true, "Backup age": true, "Backup restore verification": true,
		}
		for name, data := range files.Dashboards {
			queries, err := stackcheck.Queries([]byte(data))
			require.NoError(t, err)
			shown := map[string]bool{}
			for _, q := range queries {
				v, _, _, err := promAPI.Query(ctx, q.Expr, time.Now())
				require.NoError(t, err, "%s panel %q target %s: %s", name, q.Panel, q.RefID, q.Expr)
				if vec, ok := v.(model.Vector); ok && len(vec) > 0 {
					shown[q.Panel] = true
				}
			}
			for panel := range mustShow {
				require.True(t, shown[panel], "%s: panel %q shows no data", name, panel)
			}
		}
	})

	t.Run("redis down fires RedisDown and reaches the receiver, restore resolves it", func(t *testing.T) {
		authRedis.Stop()
		labels := map[string]string{"store": "auth-redis", "severity": "critical"}
		waitFor(t, "RedisDown{store=auth-redis} firing", alertFiring(promAPI, "RedisDown", labels))
		still, err := alertFiring(promAPI, "RedisDown", map[string]string{"store": "authz-redis"})(ctx)
		require.NoError(t, err)
		require.False(t, still, "authz-redis is up; only auth-redis may be reported down")
		waitFor(t, "webhook receives RedisDown firing", func(context.Context) (bool, error) {
			return sink.received("firing", map[string]string{"alertname": "RedisDown", "store": "auth-redis"}), nil
		})

		authRedis.Start()
		waitFor(t, "RedisDown resolved", func(ctx context.Context) (bool, error) {
			on, err := alertFiring(promAPI, "RedisDown", map[string]string{"store": "auth-redis"})(ctx)
			return !on, err
		})
		waitFor(t, "webhook receives RedisDown resolved", func(context.Context) (bool, error) {
			return sink.received("resolved", map[string]string{"alertname": "RedisDown", "store": "auth-redis"}), nil
		})
	})

	t.Run("stale, missing and unverified backups fire", func(t *testing.T) {
		stale := map[string]time.Time{"auth-mysql": time.Now().Add(-2 * time.Hour), "authz-mysql": time.Now(), "auth-redis": time.Now()}
		backupMetrics(t, textfiles, stale, map[string]int{"auth-mysql": 1, "authz-mysql": 0, "auth-redis": 1})
		waitFor(t, "KrgeobukBackupStale{store=auth-mysql}", alertFiring(promAPI, "KrgeobukBackupStale", map[string]string{"store": "auth-mysql"}))
		waitFor(t, "KrgeobukBackupMissing{store=authz-redis}", alertFiring(promAPI, "KrgeobukBackupMissing", map[string]string{"store": "authz-redis"}))
		waitFor(t, "KrgeobukBackupRestoreVerifyFailed{store=authz-mysql}", alertFiring(promAPI, "KrgeobukBackupRestoreVerifyFailed", map[string]string{"store": "authz-mysql"}))
		for _, fresh := range []string{"authz-mysql", "auth-redis"} {
			on, err := alertFiring(promAPI, "KrgeobukBackupStale", map[string]string{"store": fresh})(ctx)
			require.NoError(t, err)
			require.False(t, on, "%s backed up just now", fresh)
		}
		waitFor(t, "webhook receives KrgeobukBackupStale", func(context.Context) (bool, error) {
			return sink.received("firing", map[string]string{"alertname": "KrgeobukBackupStale", "store": "auth-mysql"}), nil
		})
	})

	t.Run("error and latency alerts fire for auth-server", func(t *testing.T) {
		waitFor(t, "KrgeobukHighErrorRate{service=auth-server}", alertFiring(promAPI, "KrgeobukHighErrorRate", map[string]string{"service": "auth-server"}))
		waitFor(t, "KrgeobukHighLatency{service=auth-server}", alertFiring(promAPI, "KrgeobukHighLatency", map[string]string{"service": "auth-server"}))
	})

	t.Run("metric gate judges each revision", func(t *testing.T) {
		defaults := map[string]any{}
		data, err := MonitoringStack.ReadFile(monChartDir + "/values.yaml")
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(data, &defaults))
		th, err := metricgate.ForEnvironment(defaults, vals)
		require.NoError(t, err)
		require.Equal(t, 10*time.Second, th.Window)
		gate, err := metricgate.New(prom.URL, th)
		require.NoError(t, err)
		gate.Budget, gate.Interval = e2eWait, 500*time.Millisecond

		cases := []struct {
			rev        string
			pass       bool
			failMetric string
		}{
			{"5d8f7c9b4", true, ""},
			{"6a7b8c9d1", false, metricgate.MetricErrorRatio},
			{"7c6d5e4f2", false, metricgate.MetricP95Latency},
		}
		for _, tc := range cases {
			v, err := gate.Check(ctx, metricgate.Target{Service: "auth-server", Revision: tc.rev})
			require.NoError(t, err)
			require.Equal(t, tc.pass, v.Passed(), v.String())
			if tc.failMetric != "" {
				require.True(t, v.Failed(), v.String())
				require.Contains(t, v.String(), "auth-server@"+tc.rev+": FAIL")
				for _, r := range v.Results {
					if r.Metric == tc.failMetric {
						require.Equal(t, metricgate.Fail, r.Status, v.String())
						require.Greater(t, r.Observed, r.Threshold)
						require.Contains(t, v.String(), fmt.Sprintf("%s %.4g above threshold %.4g", r.Metric, r.Observed, r.Threshold))
					}
				}
			}
		}
		// A revision that never served traffic is no evidence either way.
		gate.Budget = 3 * time.Second
		v, err := gate.Check(ctx, metricgate.Target{Service: "auth-server", Revision: "0000000000"})
		require.NoError(t, err)
		require.False(t, v.Passed())
		require.False(t, v.Failed())
		require.Contains(t, v.String(), "NO DATA")
	})

	// Only auth-server has targets here: authz-server stands for an API whose pods are all gone.
	t.Run("an API without a scrapeable pod fires KrgeobukAppAbsent", func(t *testing.T) {
		waitFor(t, "KrgeobukAppAbsent{service=authz-server}", alertFiring(promAPI, "KrgeobukAppAbsent", map[string]string{"service": "authz-server"}))
		still, err := alertFiring(promAPI, "KrgeobukAppAbsent", map[string]string{"service": "auth-server"})(t.Context())
		require.NoError(t, err)
		require.False(t, still, "auth-server has targets up")
	})

	t.Run("a dead pod fires KrgeobukAppDown", func(t *testing.T) {
		apps["7c6d5e4f2"].Close()
		waitFor(t, "KrgeobukAppDown{pod=auth-server-7c6d5e4f2-x1}", alertFiring(promAPI, "KrgeobukAppDown",
			map[string]string{"service": "auth-server", "pod": "auth-server-7c6d5e4f2-x1"}))
	})

	t.Run("no secret on any command line", func(t *testing.T) {
		secrets := []string{authMySQL.Password, authzMySQL.Password, authRedis.Password, authzRedis.Password, hook.URL}
		for _, p := range []*promtest.Server{prom, am, mysqld, redisExp, node} {
			cmdline, err := promtest.Cmdline(p.PID())
			require.NoError(t, err)
			for _, s := range secrets {
				require.NotContains(t, cmdline, s, "%s command line", p.Name)
			}
		}
		require.NotContains(t, files.Alertmanager, hook.URL, "the rendered alertmanager.yml names the file, not the URL")
	})
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	var port int
	_, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port)
	require.NoError(t, err)
	return port
}
