package budget_test

import (
	"testing"
	"time"

	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// waits draws the first waits a backoff hands out (the budget runs on the
// clock, so without sleeping only the count bounds the loop).
func waits(b retry.Backoff) []time.Duration {
	var out []time.Duration
	for range 100 {
		d, stop := b.Next()
		if stop {
			break
		}
		out = append(out, d)
	}
	return out
}

func TestBackoffs(t *testing.T) {
	tests := []struct {
		name  string
		b     retry.Backoff
		first time.Duration
		cap   time.Duration
	}{
		{"API", budget.API(10 * time.Second), 200 * time.Millisecond, 2 * time.Second},
		{"readiness", budget.Readiness(5*time.Second, 500*time.Millisecond), 200 * time.Millisecond, 500 * time.Millisecond},
		{"registry", budget.Registry(20 * time.Second), 250 * time.Millisecond, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := waits(tt.b)
			require.NotEmpty(t, w)
			require.Equal(t, tt.first, w[0])
			require.Equal(t, tt.cap, w[len(w)-1], "waits grow to the cap")
			for _, d := range w {
				require.LessOrEqual(t, d, tt.cap)
			}
		})
	}
}

func TestOver(t *testing.T) {
	got := budget.Defaults().Over(budget.Budgets{Registry: time.Minute})
	want := budget.Defaults()
	want.Registry = time.Minute
	require.Equal(t, want, got)
	require.Equal(t, budget.Defaults(), budget.Defaults().Over(budget.Budgets{}))
}
