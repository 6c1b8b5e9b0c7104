package backup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// tailBuffer keeps the last bytes written to it: enough of a child's stderr
// to explain a failure without holding a runaway log in memory.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return strings.TrimSpace(b.buf.String()) }

// credentials is a private defaults file for the MySQL client tools. The
// password lives only in this 0600 file inside a 0700 directory and is
// removed by cleanup.
type credentials struct {
	path string
	dir  string
}

func writeDefaultsFile(user, password string) (*credentials, error) {
	dir, err := os.MkdirTemp("", "krgeobuk-backup-")
	if err != nil {
		return nil, fmt.Errorf("create private dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := filepath.Join(dir, "client.cnf")
	content := fmt.Sprintf("[client]\nuser=%s\npassword=%s\n", optionValue(user), optionValue(password))
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write defaults file: %w", err)
	}
	return &credentials{path: p, dir: dir}, nil
}

func (c *credentials) cleanup() { _ = os.RemoveAll(c.dir) }

// optionValue quotes a value for a MySQL option file.
func optionValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// Container mode relies on the compose files' rule that every container
// listens on the port it publishes, so t.Port is right inside it too.

// mysqlTool builds the command for a MySQL client tool (mysqldump, mysql)
// against t. Host mode runs the local tool with a defaults file; container
// mode runs the container's own tool through docker exec, handing the
// password over in MYSQL_PWD through docker's environment (-e NAME without a
// value), never argv. The returned cleanup removes the defaults file.
func mysqlTool(ctx context.Context, t Target, tool string, args ...string) (*exec.Cmd, func(), error) {
	if t.Container != "" {
		full := append([]string{"exec", "-i", "-e", "MYSQL_PWD", t.Container, tool,
			"--user=" + t.User, "--host=127.0.0.1", "--port=" + strconv.Itoa(t.Port), "--protocol=tcp"}, args...)
		cmd := exec.CommandContext(ctx, "docker", full...)
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+t.Password)
		return cmd, func() {}, nil
	}
	bin, err := lookTool(tool)
	if err != nil {
		return nil, nil, err
	}
	cred, err := writeDefaultsFile(t.User, t.Password)
	if err != nil {
		return nil, nil, err
	}
	// --defaults-extra-file must come first.
	full := append([]string{"--defaults-extra-file=" + cred.path,
		"--host=" + t.Host, "--port=" + strconv.Itoa(t.Port), "--protocol=tcp"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = withoutSecrets(os.Environ())
	return cmd, cred.cleanup, nil
}

// redisCLI builds a redis-cli command against t, password in REDISCLI_AUTH.
func redisCLI(ctx context.Context, t Target, args ...string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if t.Container != "" {
		full := append([]string{"exec", "-i", "-e", "REDISCLI_AUTH", t.Container, "redis-cli",
			"-p", strconv.Itoa(t.Port)}, args...)
		cmd = exec.CommandContext(ctx, "docker", full...)
	} else {
		bin, err := lookTool("redis-cli")
		if err != nil {
			return nil, err
		}
		full := append([]string{"-h", t.Host, "-p", strconv.Itoa(t.Port), "--no-auth-warning"}, args...)
		cmd = exec.CommandContext(ctx, bin, full...)
	}
	cmd.Env = append(withoutSecrets(os.Environ()), "REDISCLI_AUTH="+t.Password)
	return cmd, nil
}

// withoutSecrets drops the .env password variables from a child's
// environment: the child gets exactly the one credential it needs.
func withoutSecrets(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(k, "_PASSWORD") || k == "MYSQL_PWD" || k == "REDISCLI_AUTH" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// toolAlternatives are the names of the MySQL client tools, MariaDB names
// first (Debian warns that its mysql* names are deprecated).
var toolAlternatives = map[string][]string{
	"mysqldump": {"mariadb-dump", "mysqldump"},
	"mysql":     {"mariadb", "mysql"},
}

func lookTool(tool string) (string, error) {
	names := toolAlternatives[tool]
	if names == nil {
		names = []string{tool}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	pkg := map[string]string{"mysqldump": "mariadb-client", "mysql": "mariadb-client",
		"redis-cli": "redis-tools", "redis-check-rdb": "redis-tools", "redis-server": "redis-server"}[tool]
	return "", fmt.Errorf("%s not found: install the Debian package %s (make deps)", tool, pkg)
}
