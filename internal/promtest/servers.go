package promtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readyBudget bounds how long a freshly started server may take to answer.
const readyBudget = 60 * time.Second

// Server is a running monitoring program with an HTTP endpoint.
type Server struct {
	*Process
	// URL is http://127.0.0.1:port.
	URL string
	// Addr is 127.0.0.1:port.
	Addr string
}

func startServer(t testing.TB, name, bin, readyPath string, args func(addr string) []string) *Server {
	t.Helper()
	return startServerAt(t, name, bin, Addr(FreePort(t)), readyPath, args)
}

func startServerAt(t testing.TB, name, bin, addr, readyPath string, args func(addr string) []string) *Server {
	t.Helper()
	p := Start(t, name, bin, args(addr)...)
	s := &Server{Process: p, URL: "http://" + addr, Addr: addr}
	if err := p.WaitHTTP(t.Context(), s.URL+readyPath, readyBudget); err != nil {
		t.Fatal(err)
	}
	return s
}

// StartPrometheus runs Prometheus on dir/prometheus.yml (rule files beside
// it, as the chart mounts them) with its own temporary TSDB.
func StartPrometheus(t testing.TB, dir string) *Server {
	t.Helper()
	bin := Binary(t, Prometheus)
	data := t.TempDir()
	return startServer(t, "prometheus", bin, "/-/ready", func(addr string) []string {
		return []string{
			"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + data,
			"--web.listen-address=" + addr,
			"--log.level=warn",
		}
	})
}

// StartAlertmanager runs Alertmanager on dir/alertmanager.yml without the
// gossip cluster, listening on addr (host:port), which Prometheus's
// configuration names.
func StartAlertmanager(t testing.TB, dir, addr string) *Server {
	t.Helper()
	bin := Binary(t, Alertmanager)
	data := t.TempDir()
	return startServerAt(t, "alertmanager", bin, addr, "/-/ready", func(addr string) []string {
		return []string{
			"--config.file=" + filepath.Join(dir, "alertmanager.yml"),
			"--storage.path=" + data,
			"--web.listen-address=" + addr,
			"--cluster.listen-address=",
			"--log.level=warn",
		}
	})
}

// StartNodeExporter runs node_exporter with only the textfile collector,
// reading textfileDir the way the data server's backup jobs feed it.
func StartNodeExporter(t testing.TB, textfileDir string) *Server {
	t.Helper()
	bin := Binary(t, NodeExporter)
	return startServer(t, "node_exporter", bin, "/metrics", func(addr string) []string {
		return []string{
			"--web.listen-address=" + addr,
			"--collector.disable-defaults",
			"--collector.textfile",
			"--collector.textfile.directory=" + textfileDir,
		}
	})
}

// MySQLTarget is one instance the mysqld exporter can probe.
type MySQLTarget struct {
	// AuthModule is the my.cnf section name, such as client.auth.
	AuthModule     string
	User, Password string
	Host           string
	Port           int
}

// StartMysqldExporter runs mysqld_exporter for multi-target /probe. The
// credentials go into a 0600 my.cnf, never onto its command line.
func StartMysqldExporter(t testing.TB, targets ...MySQLTarget) *Server {
	t.Helper()
	bin := Binary(t, MysqldExporter)
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	var body string
	for i, tg := range targets {
		section := fmt.Sprintf("[%s]\nuser=%s\npassword=%s\nhost=%s\nport=%d\n\n", tg.AuthModule, tg.User, tg.Password, tg.Host, tg.Port)
		if i == 0 { // the exporter insists on a default [client] section
			body += fmt.Sprintf("[client]\nuser=%s\npassword=%s\nhost=%s\nport=%d\n\n", tg.User, tg.Password, tg.Host, tg.Port)
		}
		body += section
	}
	if err := os.WriteFile(cnf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "mysqld_exporter", bin, "/", func(addr string) []string {
		return []string{"--config.my-cnf=" + cnf, "--web.listen-address=" + addr}
	})
}

// StartRedisExporter runs redis_exporter for multi-target /scrape. passwords
// maps each target URI (redis://host:port) to its password, kept in a 0600
// file as on the data server.
func StartRedisExporter(t testing.TB, passwords map[string]string) *Server {
	t.Helper()
	bin := Binary(t, RedisExporter)
	file := filepath.Join(t.TempDir(), "passwords.json")
	body := "{"
	for i, k := range sortedKeys(passwords) {
		if i > 0 {
			body += ","
		}
		body += fmt.Sprintf("%q:%q", k, passwords[k])
	}
	body += "}"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "redis_exporter", bin, "/health", func(addr string) []string {
		// --redis.addr= (empty): no default instance, only /scrape targets.
		return []string{"--web.listen-address=" + addr, "--redis.addr=", "--redis.password-file=" + file}
	})
}
