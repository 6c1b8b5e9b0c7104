package deploytest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Log is a deploy log that the deployer and its gates write from several
// goroutines while a test reads it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// RequireVerdict fails t with the whole table report when res's verdict is
// not want: the report says why, the verdict alone does not.
func RequireVerdict(t testing.TB, want report.Verdict, res *report.Result) {
	t.Helper()
	if res.Verdict != want {
		var b bytes.Buffer
		_ = report.Table(&b, res, nil)
		t.Fatalf("verdict %s, want %s:\n%s", res.Verdict, want, b.String())
	}
	require.Equal(t, want.OK(), res.OK)
}
