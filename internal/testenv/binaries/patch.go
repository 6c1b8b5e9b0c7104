package binaries

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Patch is a change to a dependency's source, applied to a copy of the
// module taken from the module cache at build time; the tools module then
// builds against the copy through a go.work replace. Every edit must match
// exactly, so an upgrade of the module fails loudly until the patch is
// re-checked against the new source.
type Patch struct {
	// Why says what the patch is for, in the build log.
	Why string
	// Write lists files (re)written whole, relative to the module root.
	Write map[string]string
	// Edits replace text in files of the module.
	Edits []Edit
}

// Edit replaces Old by New in File, and insists that Old occurs exactly
// Count times.
type Edit struct {
	File     string
	Old, New string
	Count    int
}

// Hash identifies the patch: a changed patch invalidates the cache entry.
func (p Patch) Hash() string {
	h := sha256.New()
	for _, f := range slices.Sorted(maps.Keys(p.Write)) {
		fmt.Fprintf(h, "write %q %q\n", f, p.Write[f])
	}
	for _, e := range p.Edits {
		fmt.Fprintf(h, "edit %q %q %q %d\n", e.File, e.Old, e.New, e.Count)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Apply changes the source tree at root. It checks every edit before writing
// any file, so a source that does not match is left untouched and the error
// names the file and the text.
func (p Patch) Apply(root string) error {
	edited := map[string]string{}
	for _, e := range p.Edits {
		text, ok := edited[e.File]
		if !ok {
			b, err := os.ReadFile(filepath.Join(root, e.File))
			if err != nil {
				return fmt.Errorf("patch %s: %w", e.File, err)
			}
			text = string(b)
		}
		if n := strings.Count(text, e.Old); n != e.Count {
			return fmt.Errorf("patch %s: %q occurs %d times, want %d (source changed: re-check the patch)", e.File, e.Old, n, e.Count)
		}
		edited[e.File] = strings.ReplaceAll(text, e.Old, e.New)
	}
	for f := range p.Write {
		if _, ok := edited[f]; ok {
			return fmt.Errorf("patch %s: both edited and written whole", f)
		}
		if _, err := os.Stat(filepath.Dir(filepath.Join(root, f))); err != nil {
			return fmt.Errorf("patch %s: %w", f, err)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(edited)) {
		if err := writeFile(filepath.Join(root, f), edited[f]); err != nil {
			return fmt.Errorf("patch %s: %w", f, err)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(p.Write)) {
		if err := writeFile(filepath.Join(root, f), p.Write[f]); err != nil {
			return fmt.Errorf("patch %s: %w", f, err)
		}
	}
	return nil
}

// writeFile replaces path, which may be read-only (a copy of the module
// cache keeps its modes).
func writeFile(path, text string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
