package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The engine v0.21.8 source, as the module proxy serves it, does not build: four of its
// requirements (github.com/vito/dang/v2, vito/midterm, vito/tuist, vito/tuist/teav1) are refused
// by the proxy. They reach cmd/engine only through the Dang v2 SDK, the CLI's terminal UI
// (dagql/idtui, used by core/terminal.go for a banner) and util/scrub. The patch below cuts
// those three chains for the engine, so no stand-in code runs in it. The dagger CLI (cmd/dagger)
// needs idtui, so the three terminal modules are replaced by our compile-only stand-ins
// (scripts/engine/standins) and its progress output is held to the plain modes. Every edit must
// match exactly, so an upgrade fails loudly until the patch is re-checked against the new source.

// edit replaces Old by New in File, and insists that Old occurs exactly Count times.
type edit struct {
	File     string
	Old, New string
	Count    int
}

// patch is the whole source change applied to the engine's source tree.
type patch struct {
	Remove []string          // files or folders deleted
	Write  map[string]string // files (re)written whole
	Edits  []edit
	// DropRequire lists go.mod requirements removed before `go mod tidy`.
	DropRequire []string
	// Standins maps a module path to the folder under scripts/engine/standins that replaces it:
	// copied into the source tree at standinsDir and named by a go.mod replace.
	Standins map[string]string
}

// standinsDir is where the stand-in modules are copied inside the engine's source tree.
const standinsDir = "krgeobuk-standins"

// plainProgress is the one edit the CLI needs besides the stand-ins: the tty, dots and report
// progress modes draw with the terminal UI the stand-ins leave out (they would hang), so they
// print as plain does.
const plainProgress = "\t// krgeobuk build: the terminal UI modules are compile-only stand-ins; only plain and logs work.\n" +
	"\tif progress == \"tty\" || progress == \"dots\" || progress == \"report\" {\n\t\tprogress = \"plain\"\n\t}\n"

const dangV2Stub = `// Package dangv2 is a stub: this engine is built from the Go module proxy, which does not serve
// github.com/vito/dang/v2, so modules written against Dang v2 cannot run on it.
package dangv2

import (
	"context"
	"errors"

	"github.com/dagger/dagger/core"
	"github.com/dagger/dagger/dagql"
)

var errUnavailable = errors.New("dang v2 modules are not available in this build of the engine (github.com/vito/dang/v2 is not served by the Go module proxy)")

// Impl answers every request with errUnavailable.
type Impl struct{}

func (Impl) ModuleTypes(
	ctx context.Context,
	deps *core.SchemaBuilder,
	src dagql.ObjectResult[*core.ModuleSource],
	scopedMod dagql.ObjectResult[*core.Module],
) (inst dagql.ObjectResult[*core.Module], rerr error) {
	return inst, errUnavailable
}

func (Impl) Runtime(
	ctx context.Context,
	deps *core.SchemaBuilder,
	source dagql.ObjectResult[*core.ModuleSource],
) (core.ModuleRuntime, error) {
	return nil, errUnavailable
}
`

// enginePatch is the v0.21.8 patch.
var enginePatch = patch{
	Remove: []string{
		"cmd/dump-id",
		"core/integration/module_tui_test.go",
		"core/sdk/dang/v2/helpers.go",
	},
	Write: map[string]string{"core/sdk/dang/v2/sdk.go": dangV2Stub},
	Edits: []edit{
		// core/terminal.go: a plain banner instead of the CLI's terminal UI.
		{File: "core/terminal.go", Old: "\t\"github.com/dagger/dagger/dagql/idtui\"\n", New: "", Count: 1},
		{File: "core/terminal.go", Old: "idtui.NewOutput(term.Stderr)",
			New: "termenv.NewOutput(term.Stderr, termenv.WithProfile(termenv.ANSI), termenv.WithTTY(true))", Count: 1},
		{File: "core/terminal.go", Old: "idtui.DotFilled", New: `"●"`, Count: 1},
		{File: "core/terminal.go", Old: "idtui.IconFailure", New: `"✘"`, Count: 1},
		{File: "core/terminal.go", Old: `dump := idtui.Dump{Newline: "\r\n", Prefix: "    "}`,
			New: `dump := struct{ Newline string }{Newline: "\r\n"}`, Count: 1},
		{File: "core/terminal.go",
			Old: "if err := dump.DumpID(output, dumpID); err != nil {\n\t\treturn nil, nil, fmt.Errorf(\"failed to serialize service ID: %w\", err)\n\t}",
			New: "if dumpID != nil {\n\t\tfmt.Fprint(term.Stderr, \"    \"+dumpID.Display())\n\t}", Count: 1},
		// util/scrub: inline the terminal UI's constants it reads.
		{File: "util/scrub/scrub.go", Old: "\t\"github.com/dagger/dagger/dagql/idtui\"\n", New: "", Count: 1},
		{File: "util/scrub/scrub.go", Old: "\t\"github.com/vito/midterm\"\n", New: "", Count: 1},
		{File: "util/scrub/scrub.go", Old: "midterm.Reset.Render()", New: `"\x1b[0m"`, Count: 1},
		{File: "util/scrub/scrub.go", Old: "idtui.SkipLoggedOutTraceMsgEnvs",
			New: `[]string{"DAGGER_NO_NAG", "NOTHANKS", "SHUTUP", "GOAWAY", "STOPIT"}`, Count: 1},
		{File: "util/scrub/scrub.go", Old: "idtui.IconSuccess", New: `"✔"`, Count: 4},
		{File: "util/scrub/scrub.go", Old: "idtui.IconCached", New: `"$"`, Count: 4},
		// cmd/dagger/main.go: only the progress modes the stand-ins can serve.
		{File: "cmd/dagger/main.go", Old: "\tswitch progress {\n\tcase \"plain\":", New: plainProgress + "\tswitch progress {\n\tcase \"plain\":", Count: 1},
	},
	DropRequire: []string{"github.com/vito/dang/v2"},
	Standins: map[string]string{
		"github.com/vito/midterm":     "midterm",
		"github.com/vito/tuist":       "tuist",
		"github.com/vito/tuist/teav1": "tuist/teav1",
	},
}

// Hash identifies the patch: a changed patch gets a new cache key.
func (p patch) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "remove %q\n", p.Remove)
	for _, f := range sortedKeys(p.Write) {
		fmt.Fprintf(h, "write %q %q\n", f, p.Write[f])
	}
	for _, e := range p.Edits {
		fmt.Fprintf(h, "edit %q %q %q %d\n", e.File, e.Old, e.New, e.Count)
	}
	fmt.Fprintf(h, "drop %q\n", p.DropRequire)
	for _, m := range sortedKeys(p.Standins) {
		fmt.Fprintf(h, "standin %q %q\n", m, p.Standins[m])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Apply changes the source tree at root. It checks every edit before writing any file, so a
// source that does not match leaves the tree untouched and names the file and the text.
func (p patch) Apply(root string) error {
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
	for _, r := range p.Remove {
		if _, err := os.Lstat(filepath.Join(root, r)); err != nil {
			return fmt.Errorf("patch: remove %s: %w", r, err)
		}
	}
	for _, r := range p.Remove {
		if err := os.RemoveAll(filepath.Join(root, r)); err != nil {
			return fmt.Errorf("patch: remove %s: %w", r, err)
		}
	}
	for f, text := range edited {
		if err := os.WriteFile(filepath.Join(root, f), []byte(text), 0o644); err != nil {
			return fmt.Errorf("patch %s: %w", f, err)
		}
	}
	for f, text := range p.Write {
		if err := os.WriteFile(filepath.Join(root, f), []byte(text), 0o644); err != nil {
			return fmt.Errorf("patch %s: %w", f, err)
		}
	}
	return nil
}
