// Command krgeobuk-backup backs up, restores and verifies the data server's
// MySQL and Redis stores. The shell scripts in infrastructure/backup are thin
// wrappers around it; see infrastructure/backup/restore-procedures.md.
//
//	krgeobuk-backup backup  --store auth-mysql [--database auth] [--backup-dir D] [--keep 7 --max-age 720h]
//	krgeobuk-backup restore --store auth-mysql --file D/auth-mysql/auth/....sql.gz [--yes]
//	krgeobuk-backup verify  --store auth-mysql [--scratch-port 3399] [--allow-drift] [--scratch-may-hold-data]
//	krgeobuk-backup verify  --store auth-mysql --report-failure "why"   (records a check that could not run)
//	krgeobuk-backup offhost --store auth-mysql [--keep 14 --max-age 720h] [--recopy]   (copy to the second location)
//	krgeobuk-backup list    --store auth-mysql [--from remote]
//	krgeobuk-backup restore --store auth-mysql --from remote --file auth-mysql/auth/....sql.gz
//	krgeobuk-backup verify  --store auth-mysql --from remote   (the drill, from the off-host copy)
//
// Passwords and the off-host target's credentials come from the environment
// or the data server's .env file (--env-file), never from flags.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup/remote"
)

const usage = `usage: krgeobuk-backup backup|restore|verify|offhost|list --store NAME [flags]
run "krgeobuk-backup <command> -h" for the flags of a command`

// quietRedis drops go-redis' own log lines: its dial retries while a
// snapshot loads are expected, and every real failure comes back as an error.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Older versions kept the MySQL password in a temp file that a killed
	// run left behind; every run removes such leftovers.
	if err := backup.SweepLegacyDefaultsFiles(); err != nil {
		fmt.Fprintf(os.Stderr, "krgeobuk-backup: %v\n", err)
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "backup":
		err = cmdBackup(ctx, args[1:], stdout)
	case "restore":
		err = cmdRestore(ctx, args[1:], stdin, stdout, stderr)
	case "verify":
		err = cmdVerify(ctx, args[1:], stdout)
	case "offhost":
		err = cmdOffhost(ctx, args[1:], stdout)
	case "list":
		err = cmdList(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "krgeobuk-backup: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "krgeobuk-backup: %v\n", err)
		return 1
	}
}

// common are the flags that pick the target store.
type common struct {
	fs        *flag.FlagSet
	store     string
	engine    string
	host      string
	port      int
	user      string
	mode      string
	envFile   string
	databases multi
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newCommon(name string) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.store, "store", "", "catalog store: auth-mysql, authz-mysql, auth-redis, authz-redis")
	c.fs.StringVar(&c.engine, "engine", "", "refuse stores of another engine (mysql or redis)")
	c.fs.StringVar(&c.host, "host", "127.0.0.1", "address the store is reached at")
	c.fs.IntVar(&c.port, "port", 0, "port (default: the store's catalog port)")
	c.fs.StringVar(&c.user, "user", "root", "MySQL account")
	c.fs.StringVar(&c.mode, "mode", "host", "host: run the client tools here; container: docker exec them in the store's container")
	c.fs.StringVar(&c.envFile, "env-file", "", "the data server's .env, read for passwords and database names")
	return c
}

func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", c.fs.Args())}
	}
	if c.store == "" {
		return usageError{errors.New("--store is required")}
	}
	if c.mode != "host" && c.mode != "container" {
		return usageError{fmt.Errorf("--mode must be host or container, not %q", c.mode)}
	}
	return nil
}

// target resolves the store and its password; unknown stores are refused.
func (c *common) target() (backup.Target, []string, error) {
	st, err := backup.LookupStore(c.store, c.engine)
	if err != nil {
		return backup.Target{}, nil, err
	}
	env, err := readEnvFile(c.envFile)
	if err != nil {
		return backup.Target{}, nil, err
	}
	t := backup.Target{Store: st, Host: c.host, Port: c.port, User: c.user}
	if t.Port == 0 {
		t.Port = st.Port
	}
	if c.mode == "container" {
		t.Container = st.Name // container_name in the compose files
	}
	if t.Password = lookup(env, backup.PasswordVar(st)); t.Password == "" {
		return t, nil, fmt.Errorf("no password for %s: set %s in the environment or the --env-file", st.Name, backup.PasswordVar(st))
	}
	dbs := []string(c.databases)
	if len(dbs) == 0 && st.Engine == "mysql" {
		if d := lookup(env, backup.DatabaseVar(st)); d != "" {
			dbs = []string{d}
		}
	}
	return t, dbs, nil
}

func lookup(env map[string]string, key string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return env[key]
}

// readEnvFile reads the data server's .env; "" reads nothing.
func readEnvFile(path string) (map[string]string, error) { return backup.ReadEnvFile(path) }

func textfileDir(v string) string {
	if v == "-" {
		return ""
	}
	return v
}

func cmdBackup(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("backup")
	c.fs.Var(&c.databases, "database", "MySQL database to dump (repeatable; default: <PREFIX>_MYSQL_DATABASE)")
	dir := c.fs.String("backup-dir", "/var/backups/krgeobuk", "backup directory")
	tf := c.fs.String("textfile-dir", backup.DefaultTextfileDir, `node_exporter textfile directory ("-": write no metrics)`)
	keep := c.fs.Int("keep", 7, "newest verified backups kept whatever their age")
	maxAge := c.fs.Duration("max-age", 30*24*time.Hour, "other backups older than this are deleted")
	if err := c.parse(args); err != nil {
		return err
	}
	ret := backup.Retention{Keep: *keep, MaxAge: *maxAge}
	if err := ret.Validate(); err != nil {
		return usageError{err}
	}
	t, dbs, err := c.target()
	if err != nil {
		return err
	}
	return backup.RunBackup(ctx, t, dbs, backup.RunOptions{
		Root: *dir, TextfileDir: textfileDir(*tf), Retention: ret, Log: out,
	})
}

func cmdRestore(ctx context.Context, args []string, stdin io.Reader, out, errOut io.Writer) error {
	c := newCommon("restore")
	file := c.fs.String("file", "", "archive to restore (its .sha256 and .meta.json sidecars must be beside it); with --from remote its key")
	yes := c.fs.Bool("yes", false, "do not ask; the description of what is replaced is still printed")
	from := c.fs.String("from", "local", "local, or remote: download the off-host copy (OFFHOST_* in the env file) and restore it")
	dir := c.fs.String("backup-dir", "/var/backups/krgeobuk", "backup directory (with --from remote: the download goes into a private folder there)")
	if err := c.parse(args); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("--file is required")}
	}
	if err := checkFrom(*from); err != nil {
		return err
	}
	t, _, err := c.target()
	if err != nil {
		return err
	}
	confirm := func(summary string) error {
		fmt.Fprintln(out, summary)
		if *yes {
			fmt.Fprintln(out, "confirmed by --yes")
			return nil
		}
		if !isTerminal(stdin) {
			return errors.New("not confirmed: stdin is not a terminal; read the line above and pass --yes")
		}
		fmt.Fprintf(errOut, "Type the store name (%s) to go ahead: ", t.Store.Name)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != t.Store.Name {
			return errors.New("not confirmed: nothing was changed")
		}
		return nil
	}
	if *from == "remote" {
		return backup.RestoreOffhost(ctx, t, c.opener(), *file, *dir, confirm, out)
	}
	return backup.Restore(ctx, t, *file, confirm, out)
}

func checkFrom(from string) error {
	if from != "local" && from != "remote" {
		return usageError{fmt.Errorf("--from must be local or remote, not %q", from)}
	}
	return nil
}

// opener connects to the off-host target of the env file. Its settings are
// read when the run opens it, so a missing or broken setting is a failed run
// that the run's metrics record.
func (c *common) opener() backup.Opener {
	return func(ctx context.Context) (remote.Remote, error) {
		env, err := readEnvFile(c.envFile)
		if err != nil {
			return nil, err
		}
		cfg, err := remote.ConfigFromEnv(func(k string) string { return lookup(env, k) })
		if err != nil {
			return nil, err
		}
		return remote.Open(ctx, cfg)
	}
}

func cmdOffhost(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("offhost")
	c.fs.Var(&c.databases, "database", "MySQL database whose backups are copied (repeatable; default: <PREFIX>_MYSQL_DATABASE)")
	dir := c.fs.String("backup-dir", "/var/backups/krgeobuk", "local backup directory")
	tf := c.fs.String("textfile-dir", backup.DefaultTextfileDir, `node_exporter textfile directory ("-": write no metrics)`)
	keep := c.fs.Int("keep", 14, "newest verified off-host copies kept whatever their age")
	maxAge := c.fs.Duration("max-age", 30*24*time.Hour, "other off-host copies older than this are deleted")
	recopy := c.fs.Bool("recopy", false, "upload every verified local backup again, whatever the remote holds (after the drill found a damaged copy)")
	timeout := c.fs.Duration("timeout", 2*time.Hour, "give up on the whole run after this long")
	if err := c.parse(args); err != nil {
		return err
	}
	ret := backup.Retention{Keep: *keep, MaxAge: *maxAge}
	if err := ret.Validate(); err != nil {
		return usageError{err}
	}
	st, err := backup.LookupStore(c.store, c.engine)
	if err != nil {
		return err
	}
	env, err := readEnvFile(c.envFile)
	if err != nil {
		return err
	}
	dbs := []string(c.databases)
	if len(dbs) == 0 && st.Engine == "mysql" {
		if d := lookup(env, backup.DatabaseVar(st)); d != "" {
			dbs = []string{d}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return backup.CopyOffhost(ctx, st, dbs, c.opener(), backup.OffhostOptions{
		RunOptions: backup.RunOptions{Root: *dir, TextfileDir: textfileDir(*tf), Retention: ret, Log: out},
		Recopy:     *recopy,
	})
}

func cmdList(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("list")
	c.fs.Var(&c.databases, "database", "MySQL database (repeatable; default: <PREFIX>_MYSQL_DATABASE)")
	dir := c.fs.String("backup-dir", "/var/backups/krgeobuk", "local backup directory")
	from := c.fs.String("from", "local", "local, or remote: the off-host copies")
	if err := c.parse(args); err != nil {
		return err
	}
	if err := checkFrom(*from); err != nil {
		return err
	}
	st, err := backup.LookupStore(c.store, c.engine)
	if err != nil {
		return err
	}
	env, err := readEnvFile(c.envFile)
	if err != nil {
		return err
	}
	dbs := []string(c.databases)
	if st.Engine == "redis" {
		dbs = []string{""}
	} else if len(dbs) == 0 {
		if d := lookup(env, backup.DatabaseVar(st)); d != "" {
			dbs = []string{d}
		}
	}
	if len(dbs) == 0 {
		return fmt.Errorf("no database given (set %s or pass --database)", backup.DatabaseVar(st))
	}
	if *from == "local" {
		for _, db := range dbs {
			all, err := backup.List(backup.SeriesDir(*dir, st.Name, db))
			if err != nil {
				return err
			}
			for _, b := range all {
				state := "verified"
				if err := backup.VerifyMetadata(b.Path); err != nil {
					state = "NOT VERIFIED: " + err.Error()
				}
				fmt.Fprintf(out, "%s\t%s\t%d bytes\t%s\n", b.Path, b.Meta.FinishedAt.UTC().Format(time.RFC3339), b.Meta.SizeBytes, state)
			}
		}
		return nil
	}
	rem, err := c.opener()(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = rem.Close() }()
	fmt.Fprintf(out, "off-host copies on %s (restore one with --from remote --file KEY):\n", rem)
	for _, db := range dbs {
		all, _, err := backup.ListRemote(ctx, rem, backup.SeriesKey(st.Name, db))
		if err != nil {
			return err
		}
		for _, b := range all {
			state := "verified (sidecar, metadata, size and stored digest)"
			if !b.Verified {
				state = "NOT VERIFIED: " + b.Problem
			}
			fmt.Fprintf(out, "%s\t%s\t%d bytes\t%s\n", b.Key, b.Taken.UTC().Format(time.RFC3339), b.Meta.SizeBytes, state)
		}
	}
	return nil
}

// isTerminal asks the tty driver, so /dev/null (also a character device)
// does not count as a person at a keyboard.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func cmdVerify(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("verify")
	c.fs.Var(&c.databases, "database", "MySQL database to check (repeatable; default: <PREFIX>_MYSQL_DATABASE)")
	dir := c.fs.String("backup-dir", "/var/backups/krgeobuk", "backup directory")
	tf := c.fs.String("textfile-dir", backup.DefaultTextfileDir, `node_exporter textfile directory ("-": write no metrics)`)
	sHost := c.fs.String("scratch-host", "127.0.0.1", "scratch MySQL server the dump is restored into")
	sPort := c.fs.Int("scratch-port", 3399, "scratch MySQL port (docker-compose.verify.yml)")
	sUser := c.fs.String("scratch-user", "root", "scratch MySQL account (password: SCRATCH_MYSQL_ROOT_PASSWORD)")
	mayHold := c.fs.Bool("scratch-may-hold-data", false, "use a scratch MySQL that holds databases the check did not create (refused otherwise)")
	drift := c.fs.Bool("allow-drift", false, "accept data that changed in the source since the backup")
	failed := c.fs.String("report-failure", "", "record a failed check with this reason and exit 1, without checking (for a job that failed before the check could run)")
	from := c.fs.String("from", "local", "local, or remote: check the newest complete off-host copy (its own metrics)")
	if err := c.parse(args); err != nil {
		return err
	}
	if err := checkFrom(*from); err != nil {
		return err
	}
	st, err := backup.LookupStore(c.store, c.engine)
	if err != nil {
		return err
	}
	// Every failure from here on is a failed check of a known store: it is
	// recorded, so the alerts see a drill that never got to run.
	fail := func(err error) error {
		if d := textfileDir(*tf); d != "" {
			if werr := backup.ReportVerifyFailure(d, st.Name, *from == "remote"); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		return fmt.Errorf("verify %s: %w", st.Name, err)
	}
	if *failed != "" {
		return fail(errors.New(*failed))
	}
	t, dbs, err := c.target()
	if err != nil {
		return fail(err)
	}
	o := backup.VerifyOptions{
		RunOptions:         backup.RunOptions{Root: *dir, TextfileDir: textfileDir(*tf), Log: out},
		AllowDrift:         *drift,
		ScratchMayHoldData: *mayHold,
	}
	if *from == "remote" {
		o.Offhost = c.opener()
	}
	if t.Store.Engine == "mysql" {
		env, err := readEnvFile(c.envFile)
		if err != nil {
			return fail(err)
		}
		// An empty password fails inside Verify, so the failure still
		// reaches the verify metrics.
		pw := lookup(env, "SCRATCH_MYSQL_ROOT_PASSWORD")
		o.Scratch = &backup.Target{Store: t.Store, Host: *sHost, Port: *sPort, User: *sUser, Password: pw}
		if c.mode == "container" {
			o.Scratch.Container = "scratch-mysql" // docker-compose.verify.yml
		}
	}
	return backup.Verify(ctx, t, dbs, o)
}
