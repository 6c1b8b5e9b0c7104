package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup/remote"
)

// RunOptions are shared by backup runs and restore checks.
type RunOptions struct {
	// Root is the backup directory; each store (and database) has a series
	// directory below it.
	Root string
	// TextfileDir receives the metrics; empty writes none.
	TextfileDir string
	// Retention is applied after a fully successful run only.
	Retention Retention
	// Log receives progress lines; never secrets.
	Log io.Writer
}

func (o RunOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// RunBackup backs up t: each MySQL database in databases, or the Redis
// snapshot. Only when every backup of the run succeeded does it apply the
// retention; a failed run deletes nothing. Either way it writes the store's
// metrics: the run's outcome and the finish time of the newest verified
// backup (the oldest such time across the store's databases).
func RunBackup(ctx context.Context, t Target, databases []string, o RunOptions) error {
	if err := o.Retention.Validate(); err != nil {
		return err
	}
	if t.Store.Engine == "mysql" && len(databases) == 0 {
		return fmt.Errorf("backup %s: no database given (set %s or pass --database)", t.Store.Name, DatabaseVar(t.Store))
	}
	if t.Store.Engine == "redis" {
		databases = []string{""}
	}
	var errs []error
	for _, database := range databases {
		start := time.Now()
		var b Backup
		var err error
		if t.Store.Engine == "mysql" {
			b, err = DumpMySQL(ctx, t, database, o.Root, start)
		} else {
			b, err = SnapshotRedis(ctx, t, o.Root, start)
		}
		if err != nil {
			o.logf("FAILED %v", err)
			errs = append(errs, err)
			continue
		}
		o.logf("backup %s: wrote %s (%d bytes, sha256 %s) in %s",
			t.Store.Name, b.Path, b.Meta.SizeBytes, b.Meta.SHA256[:12], time.Since(start).Round(time.Millisecond))
	}
	runErr := errors.Join(errs...)
	if runErr == nil {
		for _, database := range databases {
			res, err := Prune(SeriesDir(o.Root, t.Store.Name, database), o.Retention, time.Now())
			if err != nil {
				runErr = err
				break
			}
			for _, p := range res.Deleted {
				o.logf("retention %s: deleted %s", t.Store.Name, filepath.Base(p))
			}
		}
	} else {
		o.logf("retention %s: skipped because the run failed; nothing deleted", t.Store.Name)
	}
	if o.TextfileDir != "" {
		var oldest time.Time
		for i, database := range databases {
			b, err := NewestVerified(SeriesDir(o.Root, t.Store.Name, database))
			if err != nil {
				oldest = time.Time{}
				break
			}
			if i == 0 || b.Meta.FinishedAt.Before(oldest) {
				oldest = b.Meta.FinishedAt
			}
		}
		err := writeMetrics(o.TextfileDir, BackupMetricsFile(t.Store.Name), t.Store.Name, []sample{
			{MetricLastSuccess, unix(oldest)},
			{MetricLastRunSuccess, boolValue(runErr == nil)},
		})
		if err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return runErr
}

// Confirm is asked, with a description of what will be replaced, before a
// restore changes anything; it returns nil to go ahead.
type Confirm func(summary string) error

// checkArchive runs every check a restore needs before it touches the
// target: the archive and its metadata match their checksums, the archive is
// of this store (and database), and its content tests clean. For a dump the
// database comes from the dump itself (its USE statement), and must agree
// with the metadata: the returned metadata names what will be dropped and
// loaded.
func checkArchive(t Target, archive, database string) (Metadata, error) {
	if err := VerifyMetadata(archive); err != nil {
		return Metadata{}, err
	}
	meta, err := ReadMetadata(archive)
	if err != nil {
		return meta, err
	}
	if meta.Store != t.Store.Name || meta.Engine != t.Store.Engine {
		return meta, fmt.Errorf("%s is a backup of %s (%s), not of %s: refusing to restore it there",
			filepath.Base(archive), meta.Store, meta.Engine, t.Store.Name)
	}
	if t.Store.Engine != "mysql" {
		if err := CheckRDB(archive); err != nil {
			return meta, fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
		return meta, nil
	}
	dbs, err := inspectDump(archive)
	if err != nil {
		return meta, fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	if len(dbs) != 1 || dbs[0] != meta.Database {
		return meta, fmt.Errorf("%s: the dump holds database(s) %s but its metadata says %q: refusing to guess which to replace",
			filepath.Base(archive), strings.Join(dbs, ", "), meta.Database)
	}
	if database != "" && meta.Database != database {
		return meta, fmt.Errorf("%s holds database %q, not %q", filepath.Base(archive), meta.Database, database)
	}
	return meta, nil
}

// Restore replaces the data of t with archive, after checking the archive
// and asking confirm with an exact description of what will be replaced.
// Nothing is changed when a check fails or confirm refuses.
func Restore(ctx context.Context, t Target, archive string, confirm Confirm, log io.Writer) error {
	o := RunOptions{Log: log}
	meta, err := checkArchive(t, archive, "")
	if err != nil {
		return fmt.Errorf("restore %s: %w", t.Store.Name, err)
	}
	what := fmt.Sprintf("backup %s (taken %s, %d bytes, sha256 of archive and metadata verified)",
		filepath.Base(archive), meta.FinishedAt.Format(time.RFC3339), meta.SizeBytes)
	if t.Store.Engine == "mysql" {
		err = restoreMySQL(ctx, t, archive, meta, what, confirm, o)
	} else {
		err = restoreRedis(ctx, t, archive, what, confirm, o)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %s", t.Store.Name, redact(err.Error(), t.Password))
	}
	return nil
}

func restoreMySQL(ctx context.Context, t Target, archive string, meta Metadata, what string, confirm Confirm, o RunOptions) error {
	db, err := openMySQL(t, "")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	summary, err := mysqlSummary(ctx, db, meta.Database)
	if err != nil {
		return fmt.Errorf("inspect target: %w", err)
	}
	if err := confirm(fmt.Sprintf("On %s, %s with %s.", t, summary, what)); err != nil {
		return err
	}
	start := time.Now()
	if err := loadMySQL(ctx, t, db, archive, meta.Database); err != nil {
		return err
	}
	o.logf("restore %s: database %s restored from %s in %s", t.Store.Name, meta.Database,
		filepath.Base(archive), time.Since(start).Round(time.Millisecond))
	return nil
}

func restoreRedis(ctx context.Context, t Target, archive, what string, confirm Confirm, o RunOptions) error {
	r, err := startReader(ctx, archive)
	if err != nil {
		return err
	}
	defer r.stop()
	rc := r.client(0)
	src, err := keyspace(ctx, rc)
	_ = rc.Close()
	if err != nil {
		return err
	}
	tc := targetClient(t, 0)
	dst, err := keyspace(ctx, tc)
	if err != nil {
		_ = tc.Close()
		return fmt.Errorf("inspect target: %w", err)
	}
	msg := fmt.Sprintf("On %s, every key (%d now, in %d databases) will be DELETED (FLUSHALL) and replaced with the %d keys of %s.",
		t, totalKeys(dst), len(dst), totalKeys(src), what)
	if err := confirm(msg); err != nil {
		_ = tc.Close()
		return err
	}
	start := time.Now()
	err = tc.FlushAll(ctx).Err()
	_ = tc.Close()
	if err != nil {
		return fmt.Errorf("flushall: %w", err)
	}
	n, err := copyKeys(ctx, r.client, func(db int) *redis.Client { return targetClient(t, db) }, dbList(src))
	if err != nil {
		return fmt.Errorf("load keys (%d copied): %w", n, err)
	}
	o.logf("restore %s: %d keys restored from %s in %s", t.Store.Name, n, filepath.Base(archive),
		time.Since(start).Round(time.Millisecond))
	return nil
}

// VerifyOptions configure a restore check.
type VerifyOptions struct {
	RunOptions
	// Scratch is the MySQL server the newest dump is restored into. It must
	// not be the source. Redis snapshots are read by a private local
	// redis-server instead.
	Scratch *Target
	// ScratchMayHoldData lets the check use a scratch server that holds
	// databases it did not create. Without it such a server is refused: it
	// is not a scratch server, and the check drops the database it loads.
	ScratchMayHoldData bool
	// AllowDrift accepts data differences (a live source keeps changing
	// after the backup); structural differences and failed restores still
	// fail the check.
	AllowDrift bool
	// Offhost, when set, checks the newest complete off-host copy instead
	// of the newest local backup (downloaded into a private folder under
	// Root) and writes the off-host verify metrics.
	Offhost Opener
}

// Verify restores the newest verified backup of each database of t into a
// scratch instance and compares it with the source, then writes the
// store's verify metrics: success, the time of the check and the time of
// the last check that succeeded.
func Verify(ctx context.Context, t Target, databases []string, o VerifyOptions) error {
	if t.Store.Engine == "redis" {
		databases = []string{""}
	}
	var errs []error
	if len(databases) == 0 {
		errs = append(errs, fmt.Errorf("verify %s: no database given (set %s or pass --database)", t.Store.Name, DatabaseVar(t.Store)))
	}
	metrics := localVerify
	var rem remote.Remote
	if o.Offhost != nil {
		metrics = offhostVerify
		r, err := o.Offhost(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("verify %s from the off-host copy: %w", t.Store.Name, err))
			databases = nil
		} else {
			rem = r
			defer func() { _ = rem.Close() }()
		}
	}
	for _, database := range databases {
		if err := verifyOne(ctx, t, database, o, rem); err != nil {
			o.logf("FAILED %v", err)
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if o.TextfileDir != "" {
		if werr := metrics.write(o.TextfileDir, t.Store.Name, err == nil, time.Now()); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

// newestOffhostCopy downloads the newest complete off-host copy of a series
// into a private folder under root. It takes the newest complete one, not
// the newest that looks intact: damage is what the check is there to find.
func newestOffhostCopy(ctx context.Context, rem remote.Remote, root, store, database string) (Backup, func(), error) {
	none := func() {}
	list, _, err := ListRemote(ctx, rem, SeriesKey(store, database))
	if err != nil {
		return Backup{}, none, err
	}
	for _, rb := range list {
		if !rb.Complete {
			continue
		}
		dir, err := fetchDir(root)
		if err != nil {
			return Backup{}, none, err
		}
		cleanup := func() { _ = os.RemoveAll(dir) }
		path, err := FetchOffhost(ctx, rem, rb.Key, dir)
		if err != nil {
			return Backup{}, cleanup, err
		}
		meta, err := ReadMetadata(path)
		if err != nil {
			return Backup{}, cleanup, fmt.Errorf("the off-host copy %s on %s: %w", rb.Key, rem, err)
		}
		return Backup{Path: path, Meta: meta}, cleanup, nil
	}
	return Backup{}, none, fmt.Errorf("no complete off-host copy of %s on %s", SeriesKey(store, database), rem)
}

func verifyOne(ctx context.Context, t Target, database string, o VerifyOptions, rem remote.Remote) error {
	label := t.Store.Name
	if database != "" {
		label += "/" + database
	}
	if rem != nil {
		label += " from the off-host copy on " + rem.String()
	}
	fail := func(err error) error {
		return fmt.Errorf("verify %s: %s", label, redact(err.Error(), t.Password, scratchPassword(o.Scratch)))
	}
	var b Backup
	var err error
	if rem != nil {
		var cleanup func()
		b, cleanup, err = newestOffhostCopy(ctx, rem, o.Root, t.Store.Name, database)
		defer cleanup()
	} else {
		b, err = NewestVerified(SeriesDir(o.Root, t.Store.Name, database))
	}
	if err != nil {
		return fail(err)
	}
	if _, err := checkArchive(t, b.Path, database); err != nil {
		return fail(err)
	}
	var diff Differences
	if t.Store.Engine == "mysql" {
		diff, err = verifyMySQL(ctx, t, database, b, o)
	} else {
		diff, err = verifyRedis(ctx, t, b)
	}
	if err != nil {
		return fail(err)
	}
	for _, s := range diff.Structural {
		o.logf("verify %s: %s", label, s)
	}
	for _, s := range diff.Data {
		o.logf("verify %s: %s", label, s)
	}
	switch {
	case len(diff.Structural) > 0:
		return fail(fmt.Errorf("%s restored, but its structure differs from the source: %s",
			filepath.Base(b.Path), strings.Join(diff.Structural, "; ")))
	case len(diff.Data) > 0 && !o.AllowDrift:
		return fail(fmt.Errorf("%s restored, but its data differs from the source: %s",
			filepath.Base(b.Path), strings.Join(diff.Data, "; ")))
	}
	o.logf("verify %s: %s restores and matches the source (%d data differences allowed as drift)",
		label, filepath.Base(b.Path), len(diff.Data))
	return nil
}

func scratchPassword(s *Target) string {
	if s == nil {
		return ""
	}
	return s.Password
}

func verifyMySQL(ctx context.Context, t Target, database string, b Backup, o VerifyOptions) (Differences, error) {
	s := o.Scratch
	if s == nil {
		return Differences{}, errors.New("no scratch MySQL server given (--scratch-port)")
	}
	if s.Password == "" {
		return Differences{}, errors.New("no password for the scratch MySQL: set SCRATCH_MYSQL_ROOT_PASSWORD")
	}
	if sameAddress(ctx, t, *s) {
		return Differences{}, fmt.Errorf("the scratch server %s is the source itself (same address and port): refusing to drop %s there", s.Addr(), database)
	}
	sdb, err := openMySQL(*s, "")
	if err != nil {
		return Differences{}, err
	}
	defer func() { _ = sdb.Close() }()
	src, err := openMySQL(t, "")
	if err != nil {
		return Differences{}, err
	}
	defer func() { _ = src.Close() }()
	// Addresses can differ and still reach one server (another name, another
	// interface, a forwarded port): ask both servers who they are.
	srcID, err := mysqlIdentity(ctx, src)
	if err != nil {
		return Differences{}, fmt.Errorf("identify source %s: %w", t.Addr(), err)
	}
	scrID, err := mysqlIdentity(ctx, sdb)
	if err != nil {
		return Differences{}, fmt.Errorf("identify scratch %s: %w", s.Addr(), err)
	}
	if srcID == scrID {
		return Differences{}, fmt.Errorf("the scratch server %s is the source itself (%s): refusing to drop %s there", s.Addr(), srcID, database)
	}
	if !o.ScratchMayHoldData {
		held, err := userDatabases(ctx, sdb)
		if err != nil {
			return Differences{}, fmt.Errorf("inspect scratch %s: %w", s.Addr(), err)
		}
		if len(held) > 0 {
			return Differences{}, fmt.Errorf("the scratch server %s holds databases the drill did not create: %s; refusing to use it (drop them, or pass --scratch-may-hold-data if it really is a scratch server)",
				s.Addr(), strings.Join(held, ", "))
		}
	}
	if err := loadMySQL(ctx, *s, sdb, b.Path, database); err != nil {
		return Differences{}, fmt.Errorf("restore into scratch %s: %w", s.Addr(), err)
	}
	defer func() { _, _ = sdb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+quoteIdent(database)) }()
	a, err := readMySQLState(ctx, src, database)
	if err != nil {
		return Differences{}, fmt.Errorf("read source: %w", err)
	}
	r, err := readMySQLState(ctx, sdb, database)
	if err != nil {
		return Differences{}, fmt.Errorf("read scratch: %w", err)
	}
	return compareMySQL(a, r), nil
}

func verifyRedis(ctx context.Context, t Target, b Backup) (Differences, error) {
	r, err := startReader(ctx, b.Path)
	if err != nil {
		return Differences{}, err
	}
	defer r.stop()
	return compareRedis(ctx, func(db int) *redis.Client { return targetClient(t, db) }, r.client, 20)
}
