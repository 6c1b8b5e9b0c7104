package backup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sidecar suffixes beside every archive.
const (
	// SumSuffix is the checksum sidecar, as sha256sum -c reads it: one
	// "<hex>  <name>" line for the archive and one for its metadata, which
	// steers a restore (store, database) and so is covered too.
	SumSuffix  = ".sha256"
	MetaSuffix = ".meta.json" // Metadata
	partialTag = ".partial-"  // hidden temporary files: ".<name>.partial-<random>"
)

// Metadata describes one backup. It is written beside the archive.
type Metadata struct {
	Store         string    `json:"store"`
	Engine        string    `json:"engine"`
	Database      string    `json:"database,omitempty"`
	File          string    `json:"file"`
	Mode          string    `json:"mode"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	SizeBytes     int64     `json:"size_bytes"`
	SHA256        string    `json:"sha256"`
	ServerVersion string    `json:"server_version,omitempty"`
	// BinlogFile/BinlogPosition/GTID are read just before the dump starts;
	// with --single-transaction they bound, not pin, the dump's snapshot.
	BinlogFile     string `json:"binlog_file,omitempty"`
	BinlogPosition uint64 `json:"binlog_position,omitempty"`
	GTID           string `json:"gtid,omitempty"`
	// Keys is the number of keys in a Redis snapshot.
	Keys int64 `json:"keys,omitempty"`
}

// Backup is one archive on disk with its metadata.
type Backup struct {
	Path string
	Meta Metadata
}

// SeriesDir is where the backups of one store (and MySQL database) live.
func SeriesDir(root, store, database string) string {
	if database == "" {
		return filepath.Join(root, store)
	}
	return filepath.Join(root, store, database)
}

func archiveName(store, database, ext string, at time.Time) string {
	stamp := at.UTC().Format("20060102T150405.000Z")
	if database == "" {
		return fmt.Sprintf("%s_%s%s", store, stamp, ext)
	}
	return fmt.Sprintf("%s_%s_%s%s", store, database, stamp, ext)
}

// isArchive tells archives from sidecars and temporary files.
func isArchive(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return strings.HasSuffix(name, ".sql.gz") || strings.HasSuffix(name, ".rdb")
}

// writeArtifact streams produce's output into a hidden temporary file in dir
// while hashing it, runs check on the finished file, writes the sidecars,
// and only then renames the archive into place. On any failure every file it
// created is removed, so nothing that looks like a backup is left behind.
func writeArtifact(dir, name string, meta Metadata, produce func(w io.Writer) error, check func(path string) error) (Backup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Backup{}, fmt.Errorf("create %s: %w", dir, err)
	}
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err == nil {
		return Backup{}, fmt.Errorf("%s already exists", final)
	}
	tmp := filepath.Join(dir, "."+name+partialTag+randomSuffix())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Backup{}, fmt.Errorf("create temporary file: %w", err)
	}
	created := []string{tmp}
	cleanup := func() {
		for _, p := range created {
			_ = os.Remove(p)
		}
	}
	h := sha256.New()
	err = produce(io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = check(tmp)
	}
	if err != nil {
		cleanup()
		return Backup{}, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		cleanup()
		return Backup{}, err
	}
	meta.File = name
	meta.FinishedAt = time.Now().UTC()
	meta.SizeBytes = st.Size()
	meta.SHA256 = hex.EncodeToString(h.Sum(nil))
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		cleanup()
		return Backup{}, err
	}
	for _, side := range []struct {
		suffix string
		data   []byte
	}{
		{MetaSuffix, append(metaJSON, '\n')},
		{SumSuffix, []byte(meta.SHA256 + "  " + name + "\n" + sha256Hex(append(metaJSON, '\n')) + "  " + name + MetaSuffix + "\n")},
	} {
		p := final + side.suffix
		if err := writeFileAtomic(p, side.data, 0o600); err != nil {
			cleanup()
			return Backup{}, err
		}
		created = append(created, p)
	}
	if err := os.Rename(tmp, final); err != nil {
		cleanup()
		return Backup{}, fmt.Errorf("rename into place: %w", err)
	}
	syncDir(dir)
	return Backup{Path: final, Meta: meta}, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so readers see the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+partialTag+randomSuffix())
	if err := os.WriteFile(tmp, data, perm); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrCorrupt marks an archive whose checksum, compression or content check
// failed.
var ErrCorrupt = errors.New("archive is corrupted or truncated")

// ReadMetadata reads the metadata sidecar of an archive.
func ReadMetadata(archive string) (Metadata, error) {
	var m Metadata
	b, err := os.ReadFile(archive + MetaSuffix)
	if err != nil {
		return m, fmt.Errorf("metadata of %s: %w", filepath.Base(archive), err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("metadata of %s: %w", filepath.Base(archive), err)
	}
	return m, nil
}

// ErrMetadataUncovered marks a backup whose checksum sidecar covers only the
// archive: it was written before the metadata was checksummed, so nothing
// proves its metadata (which store, which database) is what the backup
// wrote.
var ErrMetadataUncovered = errors.New("its metadata is not covered by its checksum")

// VerifyChecksum recomputes the sha256 of the archive and, when its sidecar
// lists it, of the metadata, and compares them with the sidecar; a missing
// sidecar, a mismatch or an unreadable file is an error wrapping
// ErrCorrupt. A sidecar without a metadata line (older backups) passes;
// VerifyMetadata requires that line.
func VerifyChecksum(archive string) error {
	_, err := verifySums(archive)
	return err
}

// VerifyMetadata is VerifyChecksum that also requires the metadata to be
// covered: what a restore needs before it trusts the metadata. An older
// backup is refused with ErrMetadataUncovered and the way to accept it.
func VerifyMetadata(archive string) error {
	covered, err := verifySums(archive)
	if err != nil {
		return err
	}
	if !covered {
		name := filepath.Base(archive)
		return fmt.Errorf("%s: %w (the backup predates metadata checksums): check %s by hand and, if it is right, "+
			"cover it with: cd %s && sha256sum %s >> %s", name, ErrMetadataUncovered, name+MetaSuffix,
			filepath.Dir(archive), name+MetaSuffix, name+SumSuffix)
	}
	return nil
}

func verifySums(archive string) (metaCovered bool, err error) {
	name := filepath.Base(archive)
	side, err := os.ReadFile(archive + SumSuffix)
	if err != nil {
		return false, fmt.Errorf("%s: no checksum sidecar: %w", name, ErrCorrupt)
	}
	sums, err := parseSums(name, side)
	if err != nil {
		return false, err
	}
	if err := checkSum(archive, sums[name]); err != nil {
		return false, err
	}
	wantMeta, ok := sums[name+MetaSuffix]
	if !ok {
		return false, nil
	}
	if err := checkSum(archive+MetaSuffix, wantMeta); err != nil {
		return false, fmt.Errorf("%w (the metadata was changed after the backup was taken)", err)
	}
	return true, nil
}

// parseSums reads a checksum sidecar of the archive name: a line for the
// archive and at most one more, for its metadata.
func parseSums(name string, side []byte) (map[string]string, error) {
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(side)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || len(fields[0]) != 64 {
			return nil, fmt.Errorf("%s: malformed checksum sidecar: %w", name, ErrCorrupt)
		}
		sums[fields[1]] = fields[0]
	}
	_, hasArchive := sums[name]
	_, hasMeta := sums[name+MetaSuffix]
	if !hasArchive || len(sums) > 2 || (len(sums) == 2 && !hasMeta) {
		return nil, fmt.Errorf("%s: malformed checksum sidecar: %w", name, ErrCorrupt)
	}
	return sums, nil
}

func checkSum(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: read: %w", filepath.Base(path), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s does not match the sidecar's %s: %w", filepath.Base(path), got[:12], want[:12], ErrCorrupt)
	}
	return nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// List returns the archives in dir, newest first by their metadata's finish
// time (file modification time when the metadata is unreadable).
func List(dir string) ([]Backup, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []Backup
	for _, e := range entries {
		if e.IsDir() || !isArchive(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		m, err := ReadMetadata(p)
		if err != nil || m.FinishedAt.IsZero() {
			info, ierr := e.Info()
			if ierr != nil {
				continue
			}
			m = Metadata{File: e.Name(), FinishedAt: info.ModTime()}
		}
		out = append(out, Backup{Path: p, Meta: m})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Meta.FinishedAt.Equal(out[j].Meta.FinishedAt) {
			return out[i].Meta.FinishedAt.After(out[j].Meta.FinishedAt)
		}
		return out[i].Path > out[j].Path
	})
	return out, nil
}

// NewestVerified returns the newest archive in dir whose checksum matches its
// sidecar, or an error when there is none.
func NewestVerified(dir string) (Backup, error) {
	all, err := List(dir)
	if err != nil {
		return Backup{}, err
	}
	for _, b := range all {
		if VerifyChecksum(b.Path) == nil {
			return b, nil
		}
	}
	return Backup{}, fmt.Errorf("no verified backup in %s", dir)
}
