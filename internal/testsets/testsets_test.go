package testsets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const testenvImport = `import "github.com/krgeobuk/krgeobuk-infra/internal/testenv"` + "\n"

func TestSplit(t *testing.T) {
	tests := []struct {
		name       string
		importPath string
		files      map[string]string // name -> source; *_x_test.go are external tests
		wantLight  []string
		wantHeavy  map[string]string
	}{
		{
			name: "a test using a heavy helper directly or through a local function is out",
			files: map[string]string{"a_test.go": "package a\n" + testenvImport + `
func TestDirect(t *testing.T) { testenv.Shared(t) }
func cluster(t *testing.T) { testenv.Shared(t) }
func viaHelper(t *testing.T) { cluster(t) }
func TestIndirect(t *testing.T) { viaHelper(t) }
func TestPure(t *testing.T) { _ = 1 + 1 }
func ExampleDoc() {}
`},
			wantLight: []string{"ExampleDoc", "TestPure"},
			wantHeavy: map[string]string{"TestDirect": Module + "/internal/testenv", "TestIndirect": Module + "/internal/testenv"},
		},
		{
			name: "a TestMain that reaches a heavy helper puts the whole package out",
			files: map[string]string{"a_test.go": "package a\n" + testenvImport + `
func TestMain(m *testing.M) { testenv.Main(m) }
func TestPure(t *testing.T) {}
`},
			wantHeavy: map[string]string{"TestPure": Module + "/internal/testenv"},
		},
		{
			name: "an external test is followed into the package under test",
			files: map[string]string{
				"a.go": "package a\n" + testenvImport + "func Start() { testenv.Start(nil, testenv.Options{}) }\nfunc Pure() {}\n",
				"a_x_test.go": "package a_test\nimport \"example.com/a\"\n" +
					"func TestStarts(t *testing.T) { a.Start() }\nfunc TestPure(t *testing.T) { a.Pure() }\n",
			},
			importPath: "example.com/a",
			wantLight:  []string{"TestPure"},
			wantHeavy:  map[string]string{"TestStarts": Module + "/internal/testenv"},
		},
		{
			name:       "a heavy helper's own tests are out",
			importPath: Module + "/internal/dbtest",
			files:      map[string]string{"a_test.go": "package dbtest\nfunc TestOptions(t *testing.T) {}\n"},
			wantHeavy:  map[string]string{"TestOptions": Module + "/internal/dbtest"},
		},
		{
			name: "a package-level variable using a heavy helper puts every test out",
			files: map[string]string{"a_test.go": "package a\n" + testenvImport + `
var opts = testenv.Options{Name: "x"}
func TestPure(t *testing.T) {}
`},
			wantHeavy: map[string]string{"TestPure": Module + "/internal/testenv"},
		},
		{
			name: "a renamed import is still recognised",
			files: map[string]string{"a_test.go": "package a\nimport te \"github.com/krgeobuk/krgeobuk-infra/internal/testenv\"\n" +
				"func TestRenamed(t *testing.T) { te.Shared(t) }\n"},
			wantHeavy: map[string]string{"TestRenamed": Module + "/internal/testenv"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := Files{ImportPath: tt.importPath, Dir: dir}
			if f.ImportPath == "" {
				f.ImportPath = "example.com/a"
			}
			for name, src := range tt.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
				switch {
				case filepath.Ext(name) == ".go" && len(name) > 10 && name[len(name)-10:] == "_x_test.go":
					f.XTestFiles = append(f.XTestFiles, name)
				case len(name) > 8 && name[len(name)-8:] == "_test.go":
					f.TestFiles = append(f.TestFiles, name)
				default:
					f.GoFiles = append(f.GoFiles, name)
				}
			}
			p, err := Split(f)
			require.NoError(t, err)
			require.Equal(t, tt.wantLight, p.Light)
			if tt.wantHeavy == nil {
				tt.wantHeavy = map[string]string{}
			}
			require.Equal(t, tt.wantHeavy, p.Heavy)
		})
	}
}

func TestSplitRefusesUnparsableSource(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a_test.go"), []byte("package a\nfunc TestX( {"), 0o644))
	_, err := Split(Files{ImportPath: "example.com/a", Dir: dir, TestFiles: []string{"a_test.go"}})
	require.ErrorContains(t, err, "a_test.go")
}

func TestRuns(t *testing.T) {
	pkgs := []Package{
		{ImportPath: "p/light", Light: []string{"TestA"}, Heavy: map[string]string{}},
		{ImportPath: "p/heavy", Heavy: map[string]string{"TestB": "x"}},
		{ImportPath: "p/mixed", Light: []string{"TestC"}, Heavy: map[string]string{"TestD": "x", "TestE.x": "x"}},
		{ImportPath: "p/light2", Light: []string{"TestF"}, Heavy: map[string]string{}},
	}
	require.Equal(t, [][]string{
		{"test", "-count=1", "p/light", "p/light2"},
		{"test", "-count=1", "-skip", `^(TestD|TestE\.x)$`, "p/mixed"},
	}, Runs(pkgs, "-count=1"))
	require.Empty(t, Runs(pkgs[1:2]), "a package with only heavy tests is not run")
}

// TestTheRepositorysSplit pins what the container set leaves out of this repository, so a new
// heavy helper or a package moving between the sets is a visible change.
func TestTheRepositorysSplit(t *testing.T) {
	pkgs, err := List(t.Context(), "../..", "./...")
	require.NoError(t, err)
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	policy := byPath[Module+"/pipelines/policy"]
	require.NotEmpty(t, policy.Light, "policy checks run in a container")
	require.Empty(t, policy.Heavy)
	charts := byPath[Module+"/charts"]
	require.Contains(t, charts.Light, "TestAppsDefaultsLintStrict", "chart lint runs in a container")
	require.Contains(t, charts.Heavy, "TestMonitoringStackEndToEnd", "the monitoring end-to-end test needs MariaDB, Redis and Prometheus")
	require.Empty(t, byPath[Module+"/pipelines/deploy"].Light, "every deploy test needs the simulated cluster")
	require.NotContains(t, byPath, Module+"/internal/testsets/cmd/testsets", "packages without tests are left out")
}
