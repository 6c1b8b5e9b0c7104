package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Retention says which backups to keep.
type Retention struct {
	// Keep is how many of the newest verified backups are kept whatever
	// their age. At least 1.
	Keep int
	// MaxAge is the age beyond which any other backup is deleted.
	MaxAge time.Duration
}

// Validate refuses settings that could delete every backup.
func (r Retention) Validate() error {
	if r.Keep < 1 {
		return fmt.Errorf("retention: keep must be at least 1, got %d", r.Keep)
	}
	if r.MaxAge <= 0 {
		return fmt.Errorf("retention: max age must be positive, got %s", r.MaxAge)
	}
	return nil
}

// PruneResult lists what Prune kept and deleted (archive paths).
type PruneResult struct {
	Kept    []string
	Deleted []string
}

// Prune applies r to one series directory: the newest r.Keep backups whose
// checksum verifies are kept whatever their age; every other backup older
// than r.MaxAge is deleted with its sidecars, as are temporary files left by
// a killed run that are older than r.MaxAge. Call it only after a run that
// succeeded.
func Prune(dir string, r Retention, now time.Time) (PruneResult, error) {
	var res PruneResult
	if err := r.Validate(); err != nil {
		return res, err
	}
	all, err := List(dir)
	if err != nil {
		return res, err
	}
	verified := 0
	for _, b := range all {
		if verified < r.Keep && VerifyChecksum(b.Path) == nil {
			verified++
			res.Kept = append(res.Kept, b.Path)
			continue
		}
		if now.Sub(b.Meta.FinishedAt) <= r.MaxAge {
			res.Kept = append(res.Kept, b.Path)
			continue
		}
		for _, p := range []string{b.Path, b.Path + SumSuffix, b.Path + MetaSuffix} {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return res, fmt.Errorf("prune %s: %w", p, err)
			}
		}
		res.Deleted = append(res.Deleted, b.Path)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, fmt.Errorf("prune %s: %w", dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), partialTag) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > r.MaxAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return res, nil
}
