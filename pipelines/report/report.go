// Package report is the one result a deploy, rollback, status or history run
// produces, and its three renderings: JSON for machines, a table for people
// at a terminal, Markdown for CI summary pages. Every rendering passes
// through a Redactor, so a secret that reached a message (an API error, an
// event, a response body) never reaches the output.
package report

import (
	"fmt"
	"strconv"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// Verdict is how a run ended.
type Verdict string

// The verdicts. Only Verified, Unchanged and Reported count as success.
const (
	// Verified: the new revision passed every gate and is marked verified.
	Verified Verdict = "verified"
	// Unchanged: images and values equal the current verified revision;
	// nothing was applied.
	Unchanged Verdict = "unchanged"
	// Reported: status and history only read.
	Reported Verdict = "reported"
	// RolledBack: the new revision failed; the newest verified revision was
	// restored, passed its gates again and serves.
	RolledBack Verdict = "rolled-back"
	// RollbackFailed: the new revision failed and so did the rollback.
	RollbackFailed Verdict = "rollback-failed"
	// Uninstalled: a first install failed and was removed; its diagnostics
	// are in the report.
	Uninstalled Verdict = "uninstalled"
	// Failed: the revision failed and there was no verified revision to
	// return to, or a manual rollback did not pass its gates.
	Failed Verdict = "failed"
	// Refused: preflight stopped the run before anything changed.
	Refused Verdict = "refused"
	// Cancelled: the run was interrupted; the lock was released and the
	// release is left for the next run to recover.
	Cancelled Verdict = "cancelled"
)

// OK reports whether the verdict is a success (exit code 0).
func (v Verdict) OK() bool { return v == Verified || v == Unchanged || v == Reported }

// Result is everything a run has to say.
type Result struct {
	Command     string `json:"command"`
	Environment string `json:"environment"`
	// Stack is what the run acted on: apps or monitoring.
	Stack     string  `json:"stack,omitempty"`
	Namespace string  `json:"namespace"`
	Release   string  `json:"release"`
	Verdict   Verdict `json:"verdict"`
	OK        bool    `json:"ok"`
	// Summary is one or two sentences saying what happened and why.
	Summary string `json:"summary"`
	// Revision is the revision this run applied (or read, for status).
	Revision int `json:"revision,omitempty"`
	// RolledBackTo is the verified revision restored, RollbackRevision the
	// new revision number Helm gave the restored copy.
	RolledBackTo     int       `json:"rolledBackTo,omitempty"`
	RollbackRevision int       `json:"rollbackRevision,omitempty"`
	Actor            string    `json:"actor,omitempty"`
	Services         []Service `json:"services,omitempty"`
	// Analysis is the metric analysis of each service the new revision
	// changed, when the environment watches revisions (analysis: block).
	Analysis []Analysis `json:"analysis,omitempty"`
	// Kept are the services a partial deploy (--service) left as they were,
	// at the image of the verified revision named.
	Kept     []Kept         `json:"kept,omitempty"`
	Problems []gate.Problem `json:"problems,omitempty"`
	// RollbackProblems are the problems of a rollback that failed its gates.
	RollbackProblems []gate.Problem     `json:"rollbackProblems,omitempty"`
	Steps            []Step             `json:"steps,omitempty"`
	Notes            []string           `json:"notes,omitempty"`
	Lock             *Lock              `json:"lock,omitempty"`
	History          []release.Revision `json:"history,omitempty"`
	StartedAt        time.Time          `json:"startedAt"`
	Duration         Duration           `json:"duration"`
	Error            string             `json:"error,omitempty"`
}

// Service is one service's state at the end of the run.
type Service struct {
	Name    string `json:"name"`
	Image   string `json:"image,omitempty"`
	Ready   int32  `json:"ready"`
	Desired int32  `json:"desired"`
	Phase   string `json:"phase"`
	// Readiness is the HTTP readiness gate's outcome ("ready", "failed", or
	// empty when the service has no readiness endpoint or was not asked).
	Readiness string `json:"readiness,omitempty"`
}

// Analysis is one service's metric analysis after the readiness gate: the
// deciding look's numbers next to the thresholds, and every look taken.
type Analysis struct {
	Service string `json:"service"`
	// Step names the canary step the analysis judged ("canary 1/2: 1 pod
	// beside 2"); empty for the full rollout's.
	Step string `json:"step,omitempty"`
	// Revision is the pod-template-hash of the ReplicaSet analysed.
	Revision string `json:"revision,omitempty"`
	// Verdict is pass, fail, no-data, error, or skipped (workload unchanged).
	Verdict     string   `json:"verdict"`
	Requests    float64  `json:"requests"`
	MinRequests float64  `json:"minRequests"`
	ErrorRatio  *float64 `json:"errorRatio,omitempty"`
	MaxRatio    float64  `json:"maxErrorRatio"`
	P95Seconds  *float64 `json:"p95Seconds,omitempty"`
	MaxP95      float64  `json:"maxP95Seconds"`
	Elapsed     Duration `json:"elapsed"`
	// Stable is the stable pods' numbers at the deciding look, when a
	// canary was compared with them.
	Stable *AnalysisStable `json:"stable,omitempty"`
	// Detail says what decided the verdict, in a sentence.
	Detail  string           `json:"detail,omitempty"`
	Samples []AnalysisSample `json:"samples,omitempty"`
}

// AnalysisStable is the stable pods' side of a canary's comparison: their
// ReplicaSet and numbers, and the limits those set for the canary.
type AnalysisStable struct {
	Revision   string   `json:"revision"`
	Requests   float64  `json:"requests"`
	ErrorRatio *float64 `json:"errorRatio,omitempty"`
	P95Seconds *float64 `json:"p95Seconds,omitempty"`
	// MaxRatio and MaxP95 are the canary's limits from them (their ratio
	// plus the allowed increase, their p95 times the allowed factor).
	MaxRatio *float64 `json:"maxErrorRatio,omitempty"`
	MaxP95   *float64 `json:"maxP95Seconds,omitempty"`
}

// AnalysisSample is one look at the revision.
type AnalysisSample struct {
	Elapsed    Duration `json:"elapsed"`
	Requests   float64  `json:"requests"`
	ErrorRatio *float64 `json:"errorRatio,omitempty"`
	P95Seconds *float64 `json:"p95Seconds,omitempty"`
}

// Kept is one service a partial deploy did not change.
type Kept struct {
	Service string `json:"service"`
	// Image is what it runs, repository@digest, as Revision recorded it.
	Image    string `json:"image"`
	Revision int    `json:"revision"`
}

// Step is one stage of the run.
type Step struct {
	Name     string   `json:"name"`
	Status   string   `json:"status"` // ok, failed, skipped
	Duration Duration `json:"duration"`
	Detail   string   `json:"detail,omitempty"`
}

// Lock describes the deploy lock as the run found or left it.
type Lock struct {
	Lease   string    `json:"lease"`
	Holder  string    `json:"holder,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Live    bool      `json:"live"`
	// Gone says why a holder whose lease has not expired is stale all the
	// same (its process on this host has exited).
	Gone string `json:"gone,omitempty"`
}

// Duration marshals as seconds with millisecond precision.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(formatSeconds(time.Duration(d))), nil
}

// UnmarshalJSON reads the seconds back, so a program consuming the JSON
// report (a CI wrapper, the end-to-end tests) can decode it into Result.
func (d *Duration) UnmarshalJSON(b []byte) error {
	secs, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want seconds: %w", b, err)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)).Round(time.Millisecond))
	return nil
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}
