package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

type stageDoc struct {
	Metadata struct{ Name string }
	Spec     struct {
		ResourceRef struct{ Kind string }
		Selector    struct {
			MatchExpressions []struct {
				Key      string
				Operator string
				Values   []string
			}
		}
	}
}

func loadStages(t *testing.T) []stageDoc {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stagesYAML), 4096)
	var out []stageDoc
	for {
		var s stageDoc
		err := dec.Decode(&s)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if s.Metadata.Name != "" {
			out = append(out, s)
		}
	}
}

// admits reports whether a stage's requirement on one label lets a pod with
// that label value (empty: no label) through.
func (s stageDoc) admits(labelKey, value string) bool {
	key := `.metadata.labels["` + labelKey + `"]`
	for _, e := range s.Spec.Selector.MatchExpressions {
		if e.Key != key {
			continue
		}
		switch e.Operator {
		case "In":
			return value != "" && slices.Contains(e.Values, value)
		case "NotIn":
			return !slices.Contains(e.Values, value)
		case "Exists":
			return value != ""
		case "DoesNotExist":
			return value == ""
		}
	}
	return true
}

func (s stageDoc) hasExpr(key string) bool {
	return slices.ContainsFunc(s.Spec.Selector.MatchExpressions, func(e struct {
		Key      string
		Operator string
		Values   []string
	}) bool {
		return e.Key == key
	})
}

// Which stages can act on a pod depends only on its fault label; this is
// the table docs/testenv.md promises. A fault constant without stages, or
// two stages competing for the same pod, fails here.
func TestEveryFaultValueHasItsOwnStages(t *testing.T) {
	want := map[string][]string{
		"":              {"testenv-pod-start", "testenv-pod-ready", "testenv-pod-complete"},
		"no-such-fault": {"testenv-pod-start", "testenv-pod-ready", "testenv-pod-complete"},
		FaultCrashLoop:  {"testenv-pod-crashloop-start", "testenv-pod-crashloop-restart"},
		FaultImagePull:  {"testenv-pod-image-pull", "testenv-pod-image-pull-backoff", "testenv-pod-image-pull-retry"},
		FaultExitError:  {"testenv-pod-exit-error"},
		FaultNeverReady: {"testenv-pod-start"},
		FaultSlowReady:  {"testenv-pod-start", "testenv-pod-slow-ready"},
	}
	for _, f := range Faults() {
		require.Contains(t, want, f, "fault %q has no row in this table", f)
	}
	stages := loadStages(t)
	for value, names := range want {
		var got, first []string
		for _, s := range stages {
			if s.Spec.ResourceRef.Kind != "Pod" || !s.hasExpr(`.metadata.labels["`+FaultLabel+`"]`) {
				continue
			}
			if s.admits(FaultLabel, value) {
				got = append(got, s.Metadata.Name)
				if s.hasExpr(".status.podIP") {
					first = append(first, s.Metadata.Name)
				}
			}
		}
		require.ElementsMatch(t, names, got, "stages for %s=%q", FaultLabel, value)
		require.Len(t, first, 1, "exactly one stage must start a pod with %s=%q, got %v", FaultLabel, value, first)
	}
}

func TestNodeStagesHonourTheNodeFaultLabel(t *testing.T) {
	want := map[string][]string{
		"":           {"testenv-node-initialize", "testenv-node-heartbeat"},
		NodeNotReady: {"testenv-node-not-ready"},
	}
	stages := loadStages(t)
	for value, names := range want {
		var got []string
		for _, s := range stages {
			if s.Spec.ResourceRef.Kind == "Node" && s.admits(NodeFaultLabel, value) {
				got = append(got, s.Metadata.Name)
			}
		}
		require.ElementsMatch(t, names, got, "node stages for %s=%q", NodeFaultLabel, value)
	}
	require.Contains(t, stagesYAML, `.metadata.annotations["`+ReadyAfterAnnotation+`"]`)
}

func TestReadStat(t *testing.T) {
	cases := []struct {
		name, stat string
		want       procStat
		ok         bool
	}{
		{"plain", "42 (etcd) S 7 42 42 0", procStat{comm: "etcd", state: 'S', ppid: 7}, true},
		{"comm with spaces and parentheses", "43 (a (b) c) Z 1 43", procStat{comm: "a (b) c", state: 'Z', ppid: 1}, true},
		{"truncated", "44 (x", procStat{}, false},
		{"non-numeric ppid", "45 (x) S y", procStat{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseStat(tc.stat)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
	// And the real thing: this process's parent.
	st, ok := readStat(os.Getpid())
	require.True(t, ok)
	require.Equal(t, os.Getppid(), st.ppid)
}

func TestPackageName(t *testing.T) {
	saved := os.Args[0]
	t.Cleanup(func() { os.Args[0] = saved })
	cases := map[string]string{
		"/tmp/go-build1/b001/gate.test":           "gate",
		"/x/Pipelines_Deploy.test":                "pipelines-deploy",
		"/x/a-very-long-package-name-indeed.test": "a-very-long-package",
		"/x/___.test":                             "testenv",
	}
	for bin, want := range cases {
		os.Args[0] = bin
		got := packageName()
		require.Equal(t, want, got, "binary %s", bin)
		require.Regexp(t, nameRE, got)
	}
}

// fatalRecorder stands in for a *testing.T to catch Shared's Fatal.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestSharedWithoutMainSaysHowToFixIt(t *testing.T) {
	saved := shared.main
	shared.main = false
	t.Cleanup(func() { shared.main = saved })
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Shared(rec)
	}()
	<-done
	require.Contains(t, rec.msg, "func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }")
}

func TestPKIKeepsKeysPrivateAndServesTheCluster(t *testing.T) {
	p, err := newPKI(t.TempDir())
	require.NoError(t, err)
	entries, err := os.ReadDir(p.Dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s is readable by others", e.Name())
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.Cert)
	serving := readCert(t, p.Path("serving.crt"))
	for _, host := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", serviceIP} {
		_, err := serving.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		require.NoError(t, err, "serving certificate for %s", host)
	}
	admin := readCert(t, p.Path("admin.crt"))
	_, err = admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	require.Equal(t, []string{"system:masters"}, admin.Subject.Organization)
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block, path)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}
