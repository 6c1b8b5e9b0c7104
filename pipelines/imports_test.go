// Package pipelines_test guards the one rule every package under pipelines/
// keeps: it is pure Go that any front door can call, so nothing it builds
// on may be the Dagger SDK or a test harness of internal/.
package pipelines_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPipelinesImportNeitherDaggerNorInternal(t *testing.T) {
	// One line per package in the build graph of ./... (tests excluded: they
	// may use the harnesses): its path, then what it imports.
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())

	forbidden := func(path string) bool {
		return path == "dagger.io/dagger" || strings.HasPrefix(path, "dagger.io/dagger/") ||
			strings.HasPrefix(path, "github.com/krgeobuk/krgeobuk-infra/internal/")
	}
	importedBy := map[string][]string{}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		for _, imp := range fields[1:] {
			importedBy[imp] = append(importedBy[imp], fields[0])
		}
		if forbidden(fields[0]) {
			bad = append(bad, fields[0])
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, importedBy, "go list listed nothing")
	for _, b := range bad {
		t.Errorf("pipelines/ depends on %s (imported by %s): it belongs in ci/ or internal/", b, strings.Join(importedBy[b], ", "))
	}
}
