package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	retry "github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Endpoint is where and how to ask one service whether it is ready.
type Endpoint struct {
	URL    string
	Client *http.Client
}

// Check is one HTTP readiness check: GET Path on the port named Port of the
// Kubernetes Service named Service.
type Check struct {
	// Name is the component the check speaks for in progress and problems
	// (auth-server, prometheus).
	Name string
	// Service is the Service in front of the component's pods.
	Service string
	// Port is the name of the Service's port.
	Port string
	Path string
}

// APICheck is the readiness check of a catalog API: its /health/ready on
// the port named http of the Service named as the service.
func APICheck(svc catalog.Service) Check {
	return Check{Name: svc.Name, Service: svc.Name, Port: "http", Path: svc.ReadinessPath}
}

// Endpoints resolves a check's readiness endpoint. Production goes through
// a port-forward to each ready pod (PortForward); tests and demos on
// simulated nodes, whose pods run nothing, point at local HTTP servers.
type Endpoints interface {
	Readiness(ctx context.Context, namespace string, c Check) (Endpoint, error)
}

// ReadinessGate is the gate's name in failures and progress.
const ReadinessGate = "readiness"

// ReadinessOptions configure CheckReadiness.
type ReadinessOptions struct {
	Namespace string
	Checks    []Check
	// Timeout bounds the retries for each service. Required.
	Timeout time.Duration
	// Interval caps the wait between two requests to one service (default
	// budget.Defaults().ReadinessInterval).
	Interval time.Duration
	// AttemptTimeout bounds a single request (default 5s).
	AttemptTimeout time.Duration
	Progress       func(Progress)
}

// CheckReadiness asks every check's readiness endpoint, all at once, until
// each answers 2xx. Each service retries with exponential backoff within
// Timeout (go-retry); one that never answers 2xx fails the gate with a
// *Failure naming the service, the URL, the last status and the start of the
// last body.
func CheckReadiness(ctx context.Context, eps Endpoints, opts ReadinessOptions) error {
	if opts.Timeout <= 0 {
		return errors.New("readiness gate: no timeout given")
	}
	if opts.Interval <= 0 {
		opts.Interval = budget.Defaults().ReadinessInterval
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Second
	}
	var (
		mu       sync.Mutex
		problems []Problem
		wg       sync.WaitGroup
	)
	progress := func(p Progress) {
		if opts.Progress != nil {
			mu.Lock()
			opts.Progress(p)
			mu.Unlock()
		}
	}
	for _, c := range opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			progress(Progress{Service: c.Name, Gate: ReadinessGate, Phase: PhaseChecking, Message: c.Path})
			p, attempts, ok := checkOne(ctx, eps, opts, c, progress)
			if ok {
				progress(Progress{Service: c.Name, Gate: ReadinessGate, Phase: PhaseReady, Attempt: attempts, Message: c.Path})
				return
			}
			progress(Progress{Service: c.Name, Gate: ReadinessGate, Phase: PhaseFailed, Attempt: attempts, Message: p.Reason})
			mu.Lock()
			problems = append(problems, Describe(opts.Namespace, p))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("readiness gate: %w", err)
	}
	if len(problems) > 0 {
		order := map[string]int{}
		for i, c := range opts.Checks {
			order[c.Name] = i
		}
		sortProblems(problems, order)
		return &Failure{Gate: ReadinessGate, Problems: problems}
	}
	return nil
}

// checkOne asks one check until it answers 2xx or the budget is spent,
// and returns the problem (when not ok) and how many requests it made. A
// failed attempt whose outcome differs from the previous one is reported as
// progress, so a person sees "attempt 3: HTTP 503" without a line per retry.
func checkOne(ctx context.Context, eps Endpoints, opts ReadinessOptions, c Check, progress func(Progress)) (Problem, int, bool) {
	p := Problem{Class: ReadinessEndpoint, Service: c.Name}
	ep, err := eps.Readiness(ctx, opts.Namespace, c)
	if err != nil {
		p.Reason, p.Message = "NoEndpoint", err.Error()
		return p, 0, false
	}
	attempts := 0
	lastOutcome := ""
	failed := func(err error) error {
		if msg := outcome(err); msg != lastOutcome {
			lastOutcome = msg
			progress(Progress{Service: c.Name, Gate: ReadinessGate, Phase: PhaseChecking, Attempt: attempts, Message: msg})
		}
		return retry.RetryableError(err)
	}
	b := budget.Readiness(opts.Timeout, opts.Interval)
	err = retry.Do(ctx, b, func(ctx context.Context) error {
		attempts++
		actx, cancel := context.WithTimeout(ctx, opts.AttemptTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(actx, http.MethodGet, ep.URL, nil)
		if err != nil {
			return err
		}
		resp, err := ep.Client.Do(req)
		if err != nil {
			return failed(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil
		}
		return failed(&statusError{code: resp.StatusCode, body: strings.TrimSpace(string(body))})
	})
	if err == nil {
		return p, attempts, true
	}
	var se *statusError
	if errors.As(err, &se) {
		p.Reason = fmt.Sprintf("HTTP %d", se.code)
		p.Message = fmt.Sprintf("GET %s answered %d after %d attempts in %s", ep.URL, se.code, attempts, opts.Timeout)
		if se.body != "" {
			p.Message += ": " + se.body
		}
		return p, attempts, false
	}
	p.Reason = "Unreachable"
	p.Message = fmt.Sprintf("GET %s failed after %d attempts: %v", ep.URL, attempts, err)
	return p, attempts, false
}

// outcome names a failed attempt briefly: the status code, or that the
// endpoint could not be reached. Bodies and error texts stay out of
// progress lines (they may quote a URL with credentials or a secret).
func outcome(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return fmt.Sprintf("HTTP %d", se.code)
	}
	return "unreachable"
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func sortProblems(ps []Problem, order map[string]int) {
	sort.SliceStable(ps, func(i, j int) bool { return order[ps[i].Service] < order[ps[j].Service] })
}

// URLs sends the checks it names (by Check.Name) to fixed readiness URLs
// (for example through the public ingress) and every other check to
// Fallback.
type URLs struct {
	URLs     map[string]string
	Client   *http.Client // nil: http.DefaultClient
	Fallback Endpoints
}

// Readiness implements Endpoints.
func (u URLs) Readiness(ctx context.Context, namespace string, c Check) (Endpoint, error) {
	if url, ok := u.URLs[c.Name]; ok {
		c := u.Client
		if c == nil {
			c = http.DefaultClient
		}
		return Endpoint{URL: url, Client: c}, nil
	}
	if u.Fallback == nil {
		return Endpoint{}, fmt.Errorf("service %s: no readiness URL given", c.Name)
	}
	return u.Fallback.Readiness(ctx, namespace, c)
}
