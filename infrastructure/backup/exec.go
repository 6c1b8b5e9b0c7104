package backup

import (
	"bytes"
	"context"
	"errors"
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

// defaultsPipe hands the MySQL client tools their credentials through a
// pipe the child reads as /dev/fd/3. Nothing is written to disk, so a run
// killed with SIGKILL (no cleanup runs) leaves no password behind: the pipe
// dies with the processes holding it.
func defaultsPipe(user, password string) (*os.File, error) {
	content := fmt.Sprintf("[client]\nuser=%s\npassword=%s\n", optionValue(user), optionValue(password))
	// The whole file is written before the child starts, so it must fit the
	// pipe buffer (at least 4 KiB, 64 KiB on Linux) or the write would block.
	if len(content) > 4096 {
		return nil, errors.New("the MySQL credentials are too long for the defaults pipe (over 4 KiB)")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create defaults pipe: %w", err)
	}
	_, err = w.WriteString(content)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("write defaults pipe: %w", err)
	}
	return r, nil
}

// SweepLegacyDefaultsFiles removes the password files that versions before
// the defaults pipe left in the temp directory when they were killed
// (<tmp>/krgeobuk-backup-*/client.cnf), and their directories once empty.
// Nothing else is touched.
func SweepLegacyDefaultsFiles() error {
	files, err := filepath.Glob(filepath.Join(os.TempDir(), "krgeobuk-backup-*", "client.cnf"))
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("remove leftover %s: %w", f, err))
			continue
		}
		_ = os.Remove(filepath.Dir(f)) // only succeeds when empty
	}
	return errors.Join(errs...)
}

// optionValue quotes a value for a MySQL option file.
func optionValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// Container mode relies on the compose files' rule that every container
// listens on the port it publishes, so t.Port is right inside it too.

// mysqlTool builds the command for a MySQL client tool (mysqldump, mysql)
// against t. Host mode runs the local tool with a defaults pipe; container
// mode runs the container's own tool through docker exec, handing the
// password over in MYSQL_PWD through docker's environment (-e NAME without a
// value), never argv. The returned cleanup closes the defaults pipe.
func mysqlTool(ctx context.Context, t Target, tool string, args ...string) (*exec.Cmd, func(), error) {
	if t.Container != "" {
		full := append([]string{"exec", "-i", "-e", "MYSQL_PWD", t.Container, tool,
			"--user=" + t.User, "--host=127.0.0.1", "--port=" + strconv.Itoa(t.Port), "--protocol=tcp"}, args...)
		cmd := exec.CommandContext(ctx, "docker", full...)
		cmd.Env = append(childEnv(), "MYSQL_PWD="+t.Password)
		return cmd, func() {}, nil
	}
	bin, err := lookTool(tool)
	if err != nil {
		return nil, nil, err
	}
	cred, err := defaultsPipe(t.User, t.Password)
	if err != nil {
		return nil, nil, err
	}
	// --defaults-extra-file must come first; ExtraFiles[0] is fd 3 in the
	// child.
	full := append([]string{"--defaults-extra-file=/dev/fd/3",
		"--host=" + t.Host, "--port=" + strconv.Itoa(t.Port), "--protocol=tcp"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.ExtraFiles = []*os.File{cred}
	cmd.Env = childEnv()
	return cmd, func() { _ = cred.Close() }, nil
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
	cmd.Env = append(childEnv(), "REDISCLI_AUTH="+t.Password)
	return cmd, nil
}

// childEnv is the environment of every child process: this process's,
// without any password, so a child gets only the one credential its caller
// adds (or none).
func childEnv() []string { return withoutSecrets(os.Environ()) }

// withoutSecrets drops the .env password variables from a child's
// environment: the child gets exactly the one credential it needs.
func withoutSecrets(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		// OFFHOST_*: the off-host target's credentials; no child needs them.
		if strings.HasSuffix(k, "_PASSWORD") || k == "MYSQL_PWD" || k == "REDISCLI_AUTH" || strings.HasPrefix(k, "OFFHOST_") {
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
