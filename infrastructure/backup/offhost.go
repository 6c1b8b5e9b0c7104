package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup/remote"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// The off-host copy keeps the local layout on the remote: the archive, its
// metadata and its checksum sidecar under <store>[/<database>]/. The
// sidecar is written last and only after the archive and the metadata were
// read back and matched; a reader counts a backup only when its sidecar is
// there. So a copy cut off at any point leaves nothing that looks complete,
// and the next run uploads it again.

// Opener connects to the remote. A run calls it once, so a remote that is
// not configured or not reachable is a failed run like any other.
type Opener func(ctx context.Context) (remote.Remote, error)

// SeriesKey is the remote folder of a series, as SeriesDir is the local one.
func SeriesKey(store, database string) string {
	if database == "" {
		return store
	}
	return store + "/" + database
}

// RemoteBackup is one backup as the remote holds it.
type RemoteBackup struct {
	// Key is the archive's key; Name its file name.
	Key, Name string
	// Taken is when the backup finished, from its metadata, or the time
	// in its name (when it started) for a copy whose metadata is unreadable.
	Taken time.Time
	// Complete: archive, metadata and checksum sidecar are all stored, so
	// the copy finished.
	Complete bool
	// Verified: complete, the metadata matches the sidecar, and the archive
	// has the size the metadata records and, where the server keeps one,
	// the SHA-256 the sidecar records. A restore and the drill still
	// re-read and check the whole archive.
	Verified bool
	// Problem says why it is not verified.
	Problem string
	Meta    Metadata
	Sum     []byte
	keys    []string
}

var stampedArchive = regexp.MustCompile(`_(\d{8}T\d{6}\.\d{3}Z)(\.sql\.gz|\.rdb)$`)

// archiveOf maps a file of a series to the archive it belongs to; ok is
// false for files that are not a backup's, which are never touched.
func archiveOf(name string) (archive string, partial, ok bool) {
	if strings.HasPrefix(name, ".") && strings.Contains(name, partialTag) {
		name, partial = strings.TrimPrefix(name[:strings.Index(name, partialTag)], "."), true
	}
	base := strings.TrimSuffix(strings.TrimSuffix(name, SumSuffix), MetaSuffix)
	if strings.HasPrefix(base, ".") || !stampedArchive.MatchString(base) {
		return "", false, false
	}
	return base, partial, true
}

func takenAt(archive string) time.Time {
	m := stampedArchive.FindStringSubmatch(archive)
	if m == nil {
		return time.Time{}
	}
	t, _ := time.Parse("20060102T150405.000Z", m[1])
	return t
}

// ListRemote returns the backups of one series on rem, newest first, and
// the hidden temporary files interrupted copies left.
func ListRemote(ctx context.Context, rem remote.Remote, seriesKey string) ([]RemoteBackup, []remote.Object, error) {
	objs, err := rem.List(ctx, seriesKey)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]map[string]remote.Object{}
	var partials []remote.Object
	for _, o := range objs {
		archive, partial, ok := archiveOf(o.Name())
		switch {
		case !ok:
			continue
		case partial:
			partials = append(partials, o)
			continue
		}
		if byName[archive] == nil {
			byName[archive] = map[string]remote.Object{}
		}
		byName[archive][strings.TrimPrefix(o.Name(), archive)] = o
	}
	var out []RemoteBackup
	for name, files := range byName {
		b := RemoteBackup{Key: seriesKey + "/" + name, Name: name, Taken: takenAt(name)}
		for suffix := range files {
			b.keys = append(b.keys, b.Key+suffix)
		}
		_, hasArchive := files[""]
		_, hasMeta := files[MetaSuffix]
		_, hasSum := files[SumSuffix]
		b.Complete = hasArchive && hasMeta && hasSum
		if !b.Complete {
			b.Problem = "incomplete: a copy that did not finish (no checksum sidecar, metadata or archive)"
		} else if err := inspectRemote(ctx, rem, &b); err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			b.Problem = err.Error()
		} else {
			b.Verified = true
		}
		if !b.Meta.FinishedAt.IsZero() {
			b.Taken = b.Meta.FinishedAt
		}
		out = append(out, b)
	}
	sortRemote(out)
	return out, partials, nil
}

func sortRemote(bs []RemoteBackup) {
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].Taken.Equal(bs[j].Taken) {
			return bs[i].Taken.After(bs[j].Taken)
		}
		return bs[i].Name > bs[j].Name
	})
}

// inspectRemote reads a complete copy's sidecar and metadata and checks
// them against each other and against the archive's size and stored digest.
func inspectRemote(ctx context.Context, rem remote.Remote, b *RemoteBackup) error {
	var sum, meta bytes.Buffer
	if err := rem.Get(ctx, b.Key+SumSuffix, &sum); err != nil {
		return err
	}
	b.Sum = sum.Bytes()
	sums, err := parseSums(b.Name, b.Sum)
	if err != nil {
		return err
	}
	if err := rem.Get(ctx, b.Key+MetaSuffix, &meta); err != nil {
		return err
	}
	if want, ok := sums[b.Name+MetaSuffix]; !ok || sha256Hex(meta.Bytes()) != want {
		return fmt.Errorf("%s: the metadata does not match the checksum sidecar: %w", b.Name, ErrCorrupt)
	}
	if err := json.Unmarshal(meta.Bytes(), &b.Meta); err != nil {
		return fmt.Errorf("%s: metadata: %w", b.Name, err)
	}
	st, err := rem.Stat(ctx, b.Key)
	if err != nil {
		return err
	}
	if st.Size != b.Meta.SizeBytes {
		return fmt.Errorf("%s: %d bytes stored, the metadata says %d: %w", b.Name, st.Size, b.Meta.SizeBytes, ErrCorrupt)
	}
	if st.SHA256 != "" && st.SHA256 != sums[b.Name] {
		return fmt.Errorf("%s: the server's SHA-256 %s does not match the sidecar's %s: %w", b.Name, st.SHA256[:12], sums[b.Name][:12], ErrCorrupt)
	}
	return nil
}

// OffhostOptions configure an off-host copy run.
type OffhostOptions struct {
	// RunOptions: Root is the local backup folder, Retention is applied to
	// the remote after a run that copied and verified everything.
	RunOptions
	// Recopy uploads every local backup again, whatever the remote holds:
	// after the drill found a damaged off-host copy.
	Recopy bool
}

// CopyOffhost copies every local backup of store (each database) whose
// checksums verify and that the remote does not already hold intact, reads
// each back, and only when all of that succeeded applies the retention on
// the remote; a failed run deletes nothing there and never touches the
// local backups. It writes the store's off-host metrics either way.
func CopyOffhost(ctx context.Context, store catalog.DataStore, databases []string, open Opener, o OffhostOptions) error {
	if err := o.Retention.Validate(); err != nil {
		return err
	}
	if store.Engine == "redis" {
		databases = []string{""}
	}
	var newest time.Time
	listed := false
	err := func() error {
		if len(databases) == 0 {
			return fmt.Errorf("no database given (set %s or pass --database)", DatabaseVar(store))
		}
		rem, err := open(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = rem.Close() }()
		if err := notTheLocalFolder(ctx, rem, o.Root); err != nil {
			return err
		}
		var errs []error
		for _, database := range databases {
			if err := copySeries(ctx, rem, store.Name, database, o); err != nil {
				o.logf("FAILED %v", err)
				errs = append(errs, err)
			}
		}
		runErr := errors.Join(errs...)
		if runErr == nil {
			for _, database := range databases {
				deleted, err := PruneRemote(ctx, rem, SeriesKey(store.Name, database), o.Retention, time.Now())
				for _, name := range deleted {
					o.logf("off-host retention %s: deleted %s", store.Name, name)
				}
				if err != nil {
					runErr = err
					break
				}
			}
		} else {
			o.logf("off-host retention %s: skipped because the copy failed; nothing deleted on %s", store.Name, rem)
		}
		newest, listed = newestOffhost(ctx, rem, store.Name, databases)
		return runErr
	}()
	if err != nil {
		err = fmt.Errorf("off-host copy of %s: %w", store.Name, err)
	}
	if o.TextfileDir != "" {
		file := OffhostMetricsFile(store.Name)
		last := unix(newest)
		if !listed {
			// The remote could not be asked: what it held before still counts.
			last = previousValue(o.TextfileDir, file, MetricOffhostLastSuccess)
		}
		werr := writeMetrics(o.TextfileDir, file, store.Name, []sample{
			{MetricOffhostLastSuccess, last},
			{MetricOffhostLastRunSuccess, boolValue(err == nil)},
		})
		err = errors.Join(err, werr)
	}
	return err
}

// newestOffhost is the finish time of the newest verified off-host backup,
// the oldest such time across the databases (zero when one has none).
func newestOffhost(ctx context.Context, rem remote.Remote, store string, databases []string) (time.Time, bool) {
	var oldest time.Time
	for i, database := range databases {
		list, _, err := ListRemote(ctx, rem, SeriesKey(store, database))
		if err != nil {
			return time.Time{}, false
		}
		var t time.Time
		for _, b := range list {
			if b.Verified {
				t = b.Meta.FinishedAt
				break
			}
		}
		if t.IsZero() {
			return time.Time{}, true
		}
		if i == 0 || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, true
}

// notTheLocalFolder refuses a remote that is this machine's own backup
// folder under another name (an SFTP login to this host, an S3 gateway
// over this disk): decided by what the remote holds, not by its address. A
// copy there would be no off-host copy, and its retention would delete
// local backups.
func notTheLocalFolder(ctx context.Context, rem remote.Remote, root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	probe := ".offhost-probe-" + randomSuffix()
	p := filepath.Join(root, probe)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(p) }()
	_, err := rem.Stat(ctx, probe)
	switch {
	case err == nil:
		return fmt.Errorf("the off-host target %s is this machine's backup folder %s itself (it holds the file %s just written there): "+
			"a copy there dies with this disk and its retention would delete local backups; point %s at another host",
			rem, root, probe, remote.EnvURL)
	case errors.Is(err, remote.ErrNotExist):
		return nil
	default:
		return err
	}
}

func copySeries(ctx context.Context, rem remote.Remote, store, database string, o OffhostOptions) error {
	label := store
	if database != "" {
		label += "/" + database
	}
	dir, key := SeriesDir(o.Root, store, database), SeriesKey(store, database)
	local, err := List(dir)
	if err != nil {
		return err
	}
	held, partials, err := ListRemote(ctx, rem, key)
	if err != nil {
		return err
	}
	onRemote := map[string]RemoteBackup{}
	for _, b := range held {
		onRemote[b.Name] = b
	}
	candidates, copied, verified := 0, 0, 0
	now := time.Now()
	for _, b := range local {
		if err := VerifyMetadata(b.Path); err != nil {
			o.logf("off-host %s: not copying %s: %v", label, filepath.Base(b.Path), err)
			continue
		}
		verified++
		// What the remote's retention would delete right away is not
		// copied: the same rule on both sides, so nothing goes back and forth.
		if verified > o.Retention.Keep && now.Sub(b.Meta.FinishedAt) > o.Retention.MaxAge {
			continue
		}
		candidates++
		sum, err := os.ReadFile(b.Path + SumSuffix)
		if err != nil {
			return err
		}
		if r, ok := onRemote[filepath.Base(b.Path)]; ok && r.Verified && bytes.Equal(r.Sum, sum) && !o.Recopy {
			continue
		}
		start := time.Now()
		if err := copyOne(ctx, rem, key, b, sum, partials); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		copied++
		o.logf("off-host %s: copied %s to %s and read it back (%d bytes, sha256 %s) in %s", label, filepath.Base(b.Path),
			rem, b.Meta.SizeBytes, b.Meta.SHA256[:12], time.Since(start).Round(time.Millisecond))
	}
	if candidates == 0 {
		return fmt.Errorf("%s: no verified local backup in %s to copy", label, dir)
	}
	o.logf("off-host %s: %d of %d verified local backups copied, the others were already there intact", label, copied, candidates)
	return nil
}

// copyOne uploads one backup: its sidecar goes first (so it stops looking
// complete while it is replaced), leftovers of earlier attempts go, the
// archive and metadata are stored and read back, and the sidecar is stored
// last.
func copyOne(ctx context.Context, rem remote.Remote, seriesKey string, b Backup, sum []byte, partials []remote.Object) error {
	name := filepath.Base(b.Path)
	key := seriesKey + "/" + name
	if err := rem.Delete(ctx, key+SumSuffix); err != nil {
		return err
	}
	for _, p := range partials {
		if archive, _, _ := archiveOf(p.Name()); archive == name {
			if err := rem.Delete(ctx, p.Key); err != nil {
				return err
			}
		}
	}
	meta, err := os.ReadFile(b.Path + MetaSuffix)
	if err != nil {
		return err
	}
	f, err := os.Open(b.Path)
	if err != nil {
		return err
	}
	err = rem.Put(ctx, key, f, b.Meta.SizeBytes, b.Meta.SHA256)
	_ = f.Close()
	if err != nil {
		return err
	}
	if err := putBytes(ctx, rem, key+MetaSuffix, meta); err != nil {
		return err
	}
	if err := readBack(ctx, rem, key, b.Meta.SizeBytes, b.Meta.SHA256); err != nil {
		return err
	}
	if err := readBack(ctx, rem, key+MetaSuffix, int64(len(meta)), sha256Hex(meta)); err != nil {
		return err
	}
	if err := putBytes(ctx, rem, key+SumSuffix, sum); err != nil {
		return err
	}
	return readBack(ctx, rem, key+SumSuffix, int64(len(sum)), sha256Hex(sum))
}

func putBytes(ctx context.Context, rem remote.Remote, key string, b []byte) error {
	return rem.Put(ctx, key, bytes.NewReader(b), int64(len(b)), sha256Hex(b))
}

// readBack reads a stored file completely and compares its size and
// SHA-256 (and the server's own digest, where it keeps one).
func readBack(ctx context.Context, rem remote.Remote, key string, size int64, want string) error {
	st, err := rem.Stat(ctx, key)
	if err != nil {
		return err
	}
	if st.Size != size {
		return fmt.Errorf("%s on %s has %d bytes after the copy, not %d: %w", key, rem, st.Size, size, ErrCorrupt)
	}
	if st.SHA256 != "" && st.SHA256 != want {
		return fmt.Errorf("%s on %s: the server's SHA-256 %s is not %s: %w", key, rem, st.SHA256[:12], want[:12], ErrCorrupt)
	}
	h := sha256.New()
	if err := rem.Get(ctx, key, h); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s on %s reads back with SHA-256 %s, not %s: %w", key, rem, got[:12], want[:12], ErrCorrupt)
	}
	return nil
}

// PruneRemote applies r to one series on the remote: the newest r.Keep
// verified copies are kept whatever their age; every other backup (or
// incomplete copy) taken more than r.MaxAge ago is deleted, its sidecar
// first so it never looks complete with parts missing, as are the
// temporary files of interrupted copies older than r.MaxAge. Files that
// are not a backup's are never touched. Call it only after a run that
// succeeded. It returns the names it deleted.
func PruneRemote(ctx context.Context, rem remote.Remote, seriesKey string, r Retention, now time.Time) ([]string, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	all, partials, err := ListRemote(ctx, rem, seriesKey)
	if err != nil {
		return nil, err
	}
	var deleted []string
	verified := 0
	for _, b := range all {
		if verified < r.Keep && b.Verified {
			verified++
			continue
		}
		if b.Taken.IsZero() || now.Sub(b.Taken) <= r.MaxAge {
			continue
		}
		keys := append([]string{b.Key + SumSuffix}, b.keys...)
		for _, k := range keys {
			if err := rem.Delete(ctx, k); err != nil {
				return deleted, fmt.Errorf("off-host retention: %w", err)
			}
		}
		deleted = append(deleted, b.Name)
	}
	for _, p := range partials {
		if now.Sub(p.ModTime) > r.MaxAge {
			if err := rem.Delete(ctx, p.Key); err != nil {
				return deleted, fmt.Errorf("off-host retention: %w", err)
			}
		}
	}
	return deleted, nil
}

// FetchOffhost downloads the complete off-host copy whose archive is key
// (with its sidecars) into dir and returns the local archive's path; the
// caller checks it like any local backup. A copy without its checksum
// sidecar is refused: it is one that did not finish.
func FetchOffhost(ctx context.Context, rem remote.Remote, key, dir string) (string, error) {
	name := path.Base(key)
	if archive, partial, ok := archiveOf(name); !ok || partial || archive != name {
		return "", fmt.Errorf("%s is not the key of a backup archive (as `krgeobuk-backup list --from remote` prints them)", key)
	}
	if _, err := rem.Stat(ctx, key+SumSuffix); err != nil {
		if errors.Is(err, remote.ErrNotExist) {
			return "", fmt.Errorf("%s on %s is not a complete off-host copy (no checksum sidecar: a copy that did not finish, or no such backup)", key, rem)
		}
		return "", err
	}
	local := filepath.Join(dir, name)
	for _, suffix := range []string{SumSuffix, MetaSuffix, ""} {
		if err := getFile(ctx, rem, key+suffix, local+suffix); err != nil {
			return "", err
		}
	}
	return local, nil
}

func getFile(ctx context.Context, rem remote.Remote, key, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = rem.Get(ctx, key, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fetchPrefix names the private folders that hold a downloaded off-host
// copy; the owning run's pid follows it, so a later run can tell the
// folders of killed runs (a whole database dump each) from live ones.
const fetchPrefix = ".offhost-fetch-"

// fetchDir makes a private folder under the backup folder for an off-host
// copy being restored or checked; the caller removes it. It first removes
// the folders that runs killed before their cleanup left behind.
func fetchDir(root string) (string, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	if err := sweepFetchDirs(root); err != nil {
		return "", err
	}
	return os.MkdirTemp(root, fmt.Sprintf("%s%d-", fetchPrefix, os.Getpid()))
}

// sweepFetchDirs removes the fetch folders under root whose owning process
// is gone. A folder of a live process (a concurrent restore or drill) is
// kept, and so is one whose name carries no pid: it is not ours to judge.
func sweepFetchDirs(root string) error {
	dirs, err := filepath.Glob(filepath.Join(root, fetchPrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), fetchPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove what a killed run left, %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// processAlive reports whether pid names a running process (signal 0
// checks without signalling; EPERM means it exists under another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// RestoreOffhost downloads the off-host copy key into a private folder
// under root and restores it into t exactly as Restore restores a local
// backup: every check first, then confirm.
func RestoreOffhost(ctx context.Context, t Target, open Opener, key, root string, confirm Confirm, log io.Writer) error {
	rem, err := open(ctx)
	if err != nil {
		return fmt.Errorf("restore %s from off-host: %w", t.Store.Name, err)
	}
	defer func() { _ = rem.Close() }()
	dir, err := fetchDir(root)
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	local, err := FetchOffhost(ctx, rem, key, dir)
	if err != nil {
		return fmt.Errorf("restore %s from off-host: %w", t.Store.Name, err)
	}
	fmt.Fprintf(log, "fetched %s from %s\n", key, rem)
	return Restore(ctx, t, local, confirm, log)
}
