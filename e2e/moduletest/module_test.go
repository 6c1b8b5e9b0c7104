// Package moduletest loads this repository's Dagger module (dagger.json at the root, source ci/)
// on the engine and calls its functions through the CLI-free runner. It needs an engine started
// with the builtin Go SDK image (`engine up --go-sdk-layout DIR`, `make e2e GO_SDK_LAYOUT=DIR`).
package moduletest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggersession"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "dagger.json")); err == nil {
			return d
		}
	}
	t.Fatalf("no dagger.json above %s: run the test binary from inside the repository", wd)
	return ""
}

func TestModuleLoadsAndCalls(t *testing.T) {
	host, err := daggersession.RunnerHost()
	require.NoError(t, err, "run through `make e2e GO_SDK_LAYOUT=DIR`")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s, err := daggersession.Start(ctx, host)
	require.NoError(t, err, "run through `make e2e GO_SDK_LAYOUT=DIR`")
	defer s.Close()

	start := time.Now()
	m, err := daggercall.LoadModule(ctx, s, repoRoot(t))
	require.NoError(t, err, "load the module (the engine needs its builtin Go SDK image: engine up --go-sdk-layout)")
	fmt.Printf("e2e timings:\n  %-28s %8.1fs\n", "first module load", time.Since(start).Seconds())
	require.Equal(t, "krgeobuk", m.Name)
	var names []string
	for n := range m.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	require.Subset(t, names, []string{"build", "check", "deploy", "integrationTest", "promote", "publish", "rollback", "status"})
	var kubeconfig daggercall.Arg
	for _, a := range m.Functions["deploy"].Args {
		if a.Name == "kubeconfig" {
			kubeconfig = a
		}
	}
	require.Equal(t, daggercall.TypeRef{Kind: daggercall.KindObject, Name: "Secret"}, kubeconfig.Type, "deploy --kubeconfig is a Secret")

	tests := []struct {
		name, function string
		argv           []string
		wantErr        string
	}{
		{name: "check refuses an unpinned Go image (the module's own validation ran)", function: "check",
			argv: []string{"--go-image", "golang"}, wantErr: `check: go image: image "golang" has no tag or digest; pin it`},
		{name: "a missing required flag is refused before the engine is asked", function: "deploy",
			argv: []string{"--env", "staging"}, wantErr: "deploy: missing required flag --kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := m.Call(ctx, tt.function, tt.argv)
			fmt.Printf("  %-28s %8.1fs\n", tt.function, time.Since(start).Seconds())
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
