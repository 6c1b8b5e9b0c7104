package promtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Mode is how the App answers.
type Mode int32

const (
	// Healthy answers 200 at once.
	Healthy Mode = iota
	// Failing answers 500.
	Failing
	// Slow answers 200 after SlowDelay.
	Slow
)

// SlowDelay is how long a Slow App takes per request.
const SlowDelay = 300 * time.Millisecond

// App is a small HTTP service that exposes the same metrics the krgeobuk
// NestJS APIs do: http_requests_total{method,route,status_code} and the
// http_request_duration_seconds histogram, on /metrics. A test can switch it
// to failing or slow while it runs.
type App struct {
	URL  string
	mode atomic.Int32
	srv  *httptest.Server
}

// StartApp serves a new App on a loopback port until the test ends.
func StartApp(t testing.TB) *App {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests by method, route and status code.",
	}, []string{"method", "route", "status_code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "HTTP request latency.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}, []string{"method", "route", "status_code"})
	reg.MustRegister(requests, duration)

	a := &App{}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/users", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := http.StatusOK
		switch Mode(a.mode.Load()) {
		case Failing:
			code = http.StatusInternalServerError
		case Slow:
			select { // simulated work, cut short if the client goes away
			case <-time.After(SlowDelay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(code)
		labels := prometheus.Labels{"method": r.Method, "route": "/users", "status_code": strconv.Itoa(code)}
		requests.With(labels).Inc()
		duration.With(labels).Observe(time.Since(start).Seconds())
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	return a
}

// Addr is the App's host:port, as a scrape target.
func (a *App) Addr() string { return a.srv.Listener.Addr().String() }

// Close stops the App, as if its pod died. Closing twice is harmless.
func (a *App) Close() { a.srv.Close() }

// SetMode switches how the App answers from the next request on.
func (a *App) SetMode(m Mode) { a.mode.Store(int32(m)) }

// Drive sends n GET /users requests, a few at a time, and returns when all
// have been answered or ctx ends.
func (a *App) Drive(ctx context.Context, n int) error {
	const parallel = 8
	client := &http.Client{Timeout: 5 * time.Second}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/users", nil)
			if err == nil {
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("drive %s: %w", a.URL, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}
