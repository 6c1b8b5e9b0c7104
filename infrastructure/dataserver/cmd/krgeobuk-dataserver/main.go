// Command krgeobuk-dataserver installs and looks after the data server's
// MySQL stores; infrastructure/setup-external-db.sh and
// infrastructure/maintenance/db-maintenance.sh are thin wrappers around it.
//
//	krgeobuk-dataserver init     --env-file infrastructure/.env [--template infrastructure/.env.example]
//	krgeobuk-dataserver grants   --store auth-mysql --env-file infrastructure/.env
//	krgeobuk-dataserver maintain --store auth-mysql --env-file infrastructure/.env [--binlog-days 7] [--optimize-all]
//
// Passwords come from the environment or the env file, never from flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/infrastructure/dataserver"
)

const usage = `usage: krgeobuk-dataserver init|grants|maintain [flags]
run "krgeobuk-dataserver <command> -h" for the flags of a command`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type usageError struct{ error }

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(errOut, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], out)
	case "grants":
		err = cmdStore(ctx, "grants", args[1:], out)
	case "maintain":
		err = cmdStore(ctx, "maintain", args[1:], out)
	case "-h", "--help", "help":
		fmt.Fprintln(out, usage)
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(errOut, "krgeobuk-dataserver: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(errOut, "krgeobuk-dataserver: %v\n", err)
		return 1
	}
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

func cmdInit(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	envFile := fs.String("env-file", "", "the data server's .env to create (never overwritten)")
	template := fs.String("template", "", "template with change-me placeholders (default: .env.example beside --env-file)")
	backupDir := fs.String("backup-dir", "/var/backups/krgeobuk", "backup folder to create (0700)")
	tf := fs.String("textfile-dir", backup.DefaultTextfileDir, "node exporter textfile folder to create (0755)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *envFile == "" {
		return usageError{errors.New("--env-file is required")}
	}
	if *template == "" {
		*template = filepath.Join(filepath.Dir(*envFile), ".env.example")
	}
	res, err := dataserver.Init(*envFile, *template, map[string]os.FileMode{*backupDir: 0o700, *tf: 0o755})
	if res.Tightened {
		fmt.Fprintf(out, "init: %s was readable by others: now 0600\n", *envFile)
	}
	if err != nil {
		return err
	}
	if res.Created {
		fmt.Fprintf(out, "init: wrote %s (0600) with new random passwords for %d variables: %v\n", *envFile, len(res.Generated), res.Generated)
	} else {
		fmt.Fprintf(out, "init: %s exists and has no placeholder left; kept as it is\n", *envFile)
	}
	fmt.Fprintf(out, "init: %s (0700) and %s (0755) ready\n", *backupDir, *tf)
	return nil
}

func cmdStore(ctx context.Context, verb string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	store := fs.String("store", "", "MySQL store: auth-mysql or authz-mysql")
	host := fs.String("host", "127.0.0.1", "address the store is reached at")
	port := fs.Int("port", 0, "port (default: the store's catalog port)")
	envFile := fs.String("env-file", "", "the data server's .env")
	days := fs.Int("binlog-days", 7, "maintain: purge binary logs older than this many days (0: none)")
	all := fs.Bool("optimize-all", false, "maintain: rebuild every table, not only fragmented ones")
	ratio := fs.Float64("optimize-free-ratio", 0.1, "maintain: rebuild a table when this share of it is free space")
	minFree := fs.Int64("optimize-min-free", 64<<20, "maintain: ... and at least this many bytes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *store == "" {
		return usageError{errors.New("--store is required")}
	}
	st, err := backup.LookupStore(*store, "mysql")
	if err != nil {
		return err
	}
	env, err := backup.ReadEnvFile(*envFile)
	if err != nil {
		return err
	}
	get := func(k string) string {
		if v, ok := os.LookupEnv(k); ok {
			return v
		}
		return env[k]
	}
	if *port == 0 {
		*port = st.Port
	}
	prefix := backup.EnvPrefix(st)
	s := dataserver.Server{Name: st.Name, Addr: *host + ":" + strconv.Itoa(*port), User: "root", Password: get(backup.PasswordVar(st))}
	if s.Password == "" {
		return fmt.Errorf("no password for %s: set %s in the environment or the --env-file", st.Name, backup.PasswordVar(st))
	}
	database := get(prefix + "_MYSQL_DATABASE")
	if verb == "grants" {
		return dataserver.Grants(ctx, s, dataserver.Accounts{
			Database: database, AppUser: get(prefix + "_MYSQL_USER"), AppPassword: get(prefix + "_MYSQL_PASSWORD"),
			ExporterPassword: get("MYSQL_EXPORTER_PASSWORD"),
		}, out)
	}
	o := dataserver.MaintainOptions{BinlogDays: *days, OptimizeAll: *all, OptimizeFreeRatio: *ratio, OptimizeMinFree: *minFree}
	if database != "" {
		o.Databases = []string{database}
	}
	if err := o.Validate(); err != nil {
		return usageError{fmt.Errorf("%w (set %s_MYSQL_DATABASE)", err, prefix)}
	}
	return dataserver.Maintain(ctx, s, o, out)
}
