// Package budget is the one place that names how long the pipeline retries
// and waits outside its gates, and how it backs off. Gate timeouts are an
// environment's Gates; everything else is here, with defaults an
// environment may override in its environment.yaml (budgets:). Every retried
// operation takes a fresh Backoff from these constructors: a Backoff is
// stateful and must not be shared.
package budget

import (
	"time"

	retry "github.com/sethvargo/go-retry"
)

// ControllerGrace is how long the Deployment controller may leave a new
// generation unobserved before the rollout gate says it is not acting, when
// an environment sets no gates.controllerGrace: a healthy controller observes
// a new generation within a second or two, and a controller manager that lost
// its leader lease takes about 15s (its lease duration) to win it back.
const ControllerGrace = time.Minute

// Budgets bounds every retry of one run against the API server and the
// registries.
type Budgets struct {
	// APIRead bounds a read of the API server (ping, history, lease,
	// workload snapshot): long enough to ride out an API server restart.
	APIRead time.Duration
	// APIWrite bounds a write of the release record (verified and failed
	// marks, pending-state recovery).
	APIWrite time.Duration
	// DryRun bounds the server-side dry run of preflight.
	DryRun time.Duration
	// Lock bounds taking the deploy lock (not waiting for a holder: a held
	// lock is refused at once).
	Lock time.Duration
	// Cleanup bounds releasing the lock after the run, even when the run was
	// cancelled.
	Cleanup time.Duration
	// Registry bounds the lookup of one image in its registry.
	Registry time.Duration
	// Copy bounds each step of copying one image between registries
	// (promotion): look-up, copy, read-back.
	Copy time.Duration
	// ReadinessInterval caps the wait between two readiness probes of one
	// service; the first retry comes after 200ms.
	ReadinessInterval time.Duration
}

// Defaults are the budgets of an environment that overrides none.
func Defaults() Budgets {
	return Budgets{
		APIRead:           30 * time.Second,
		APIWrite:          time.Minute,
		DryRun:            20 * time.Second,
		Lock:              30 * time.Second,
		Cleanup:           30 * time.Second,
		Registry:          30 * time.Second,
		Copy:              time.Minute,
		ReadinessInterval: 2 * time.Second,
	}
}

// Over returns b with every non-zero field of o laid over it.
func (b Budgets) Over(o Budgets) Budgets {
	pick := func(base, over time.Duration) time.Duration {
		if over != 0 {
			return over
		}
		return base
	}
	return Budgets{
		APIRead:           pick(b.APIRead, o.APIRead),
		APIWrite:          pick(b.APIWrite, o.APIWrite),
		DryRun:            pick(b.DryRun, o.DryRun),
		Lock:              pick(b.Lock, o.Lock),
		Cleanup:           pick(b.Cleanup, o.Cleanup),
		Registry:          pick(b.Registry, o.Registry),
		Copy:              pick(b.Copy, o.Copy),
		ReadinessInterval: pick(b.ReadinessInterval, o.ReadinessInterval),
	}
}

// API is the backoff of API server calls: exponential from 200ms, capped at
// 2s per wait, giving up after max in total.
func API(max time.Duration) retry.Backoff {
	return retry.WithMaxDuration(max, retry.WithCappedDuration(2*time.Second, retry.NewExponential(200*time.Millisecond)))
}

// Readiness is the backoff of one service's readiness probes: exponential
// from 200ms, capped at interval, giving up after timeout.
func Readiness(timeout, interval time.Duration) retry.Backoff {
	return retry.WithMaxDuration(timeout, retry.WithCappedDuration(interval, retry.NewExponential(200*time.Millisecond)))
}

// Registry is the backoff of registry calls: exponential from 250ms, capped
// at 4s, giving up after max. Registries rate-limit harder than API servers.
func Registry(max time.Duration) retry.Backoff {
	return retry.WithMaxDuration(max, retry.WithCappedDuration(4*time.Second, retry.NewExponential(250*time.Millisecond)))
}
