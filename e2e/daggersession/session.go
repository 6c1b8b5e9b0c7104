// Package daggersession opens a session on a running Dagger engine without the dagger CLI: it
// connects with github.com/dagger/dagger/engine/client, serves the session's GraphQL API on a
// loopback port with a random token, and hands out a dagger.io/dagger client and a raw query
// function bound to it.
package daggersession

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"dagger.io/dagger"
	"github.com/dagger/dagger/engine/client"
)

// HostEnv names the variable holding the engine's address (unix:///…/engine.sock); `engine exec`
// sets it. Without it, RunnerHost reads the file `engine up` writes.
const HostEnv = "KRGEOBUK_ENGINE_HOST"

// ErrNoEngine is returned (wrapped) when no engine address is known or the engine does not answer.
var ErrNoEngine = errors.New("no Dagger engine reachable: start one with `make engine-up` (tests run through `make e2e`)")

// RunnerHost returns the address of the engine `make engine-up` started.
func RunnerHost() (string, error) {
	if h := os.Getenv(HostEnv); h != "" {
		return h, nil
	}
	cache := os.Getenv("KRGEOBUK_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "krgeobuk")
	}
	b, err := os.ReadFile(filepath.Join(cache, "dagger-engine", "state", "run", "runner-host"))
	if err != nil {
		return "", fmt.Errorf("%w (%s unset, %v)", ErrNoEngine, HostEnv, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Session is an open engine session. Close it to end the session's work in the engine.
type Session struct {
	engine *client.Client
	cancel context.CancelFunc
	srv    *http.Server
	addr   string
	token  string
	http   *http.Client
	dag    *dagger.Client
}

// Start connects to the engine at runnerHost (unix://…) and serves the session on 127.0.0.1.
// The context bounds the connection only; the session lives until Close.
func Start(ctx context.Context, runnerHost string) (*Session, error) {
	sock := strings.TrimPrefix(runnerHost, "unix://")
	if sock == runnerHost {
		return nil, fmt.Errorf("engine address %q: want unix://PATH", runnerHost)
	}
	// Fail fast and clearly: client.Connect would otherwise retry a missing socket for a long time.
	probe, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoEngine, runnerHost, err)
	}
	_ = probe.Close()
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	s := &Session{token: hex.EncodeToString(tok)}
	// The engine calls back into the session's attachables (host files, secrets) for as long as
	// the session lives, on the context given to Connect: it must outlive ctx, which only bounds
	// the connection.
	sessCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	stop := context.AfterFunc(ctx, cancel)
	eng, err := client.Connect(sessCtx, client.Params{SecretToken: s.token, RunnerHost: runnerHost})
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		cancel()
		if eng != nil {
			_ = eng.Close()
		}
		return nil, fmt.Errorf("connect to engine %s: %w", runnerHost, err)
	}
	s.engine = eng
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: eng, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	s.http = &http.Client{Transport: tokenTransport{token: s.token, base: http.DefaultTransport}}
	// dagger.WithConn keeps the session out of the process environment (DAGGER_SESSION_PORT/TOKEN),
	// so tests can hold several sessions at once.
	s.dag, err = dagger.Connect(ctx, dagger.WithConn(conn{Client: s.http, host: s.addr}), dagger.WithLogOutput(io.Discard))
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("dagger client: %w", err)
	}
	return s, nil
}

// Dagger returns a dagger.io/dagger client bound to this session.
func (s *Session) Dagger() *dagger.Client { return s.dag }

// Addr is the session's loopback address (host:port); Token authenticates to it.
func (s *Session) Addr() string { return s.addr }

// Query runs a raw GraphQL query and returns its data, or an error carrying the engine's messages.
func (s *Session) Query(ctx context.Context, query string, vars map[string]any) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query: read response: %w", err)
	}
	var out struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
			Path    []any  `json:"path"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("query: HTTP %d: %s", resp.StatusCode, truncate(b))
	}
	if len(out.Errors) > 0 {
		msgs := make([]string, len(out.Errors))
		for i, e := range out.Errors {
			msgs[i] = e.Message
			if len(e.Path) > 0 {
				msgs[i] = fmt.Sprintf("%v: %s", e.Path, e.Message)
			}
		}
		return out.Data, &QueryError{Messages: msgs}
	}
	return out.Data, nil
}

// QueryError carries the engine's error messages for a query.
type QueryError struct{ Messages []string }

func (e *QueryError) Error() string { return "engine: " + strings.Join(e.Messages, "; ") }

// Close ends the session: the client, the loopback server and the engine connection.
func (s *Session) Close() error {
	var errs []error
	if s.dag != nil {
		errs = append(errs, s.dag.Close())
	}
	if s.srv != nil {
		errs = append(errs, s.srv.Close())
	}
	if s.engine != nil {
		errs = append(errs, s.engine.Close())
	}
	if s.cancel != nil {
		s.cancel()
	}
	return errors.Join(errs...)
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "…"
	}
	return string(b)
}

type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(t.token, "")
	return t.base.RoundTrip(r)
}

// conn is the engineconn.EngineConn the dagger SDK talks through.
type conn struct {
	*http.Client
	host string
}

func (c conn) Host() string { return c.host }
func (c conn) Close() error { return nil }
