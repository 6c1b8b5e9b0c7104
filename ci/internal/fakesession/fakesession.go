// Package fakesession is a FAKE Dagger engine session for contract tests: it
// serves GraphQL on a loopback port, exports DAGGER_SESSION_PORT and
// DAGGER_SESSION_TOKEN when the package is initialised (before package main's
// generated client reads them), records every query, and answers with
// made-up values. It runs nothing: a test built on it proves the shape of the
// calls a function sends (images, cache volumes, bindings, secrets,
// addresses), never that a build or a test passes.
//
// Object IDs it hands out encode the call chain that produced the object, so
// a later query that loads an object by ID is recorded with its full history.
package fakesession

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// Token is the session token the fake expects as basic-auth user.
const Token = "fake-session-token"

// idPrefix marks the IDs this fake hands out.
const idPrefix = "fakeid:"

// Call is one field selection with its arguments.
type Call struct {
	Field string         `json:"field"`
	Args  map[string]any `json:"args,omitempty"`
}

// Query is one recorded request: the raw GraphQL and its call chain, with
// loads by ID expanded to the chain that made the object.
type Query struct {
	Raw   string
	Chain []Call
}

// Leaf is the last call of the chain: what the query asked for.
func (q Query) Leaf() Call { return q.Chain[len(q.Chain)-1] }

// Server is the fake session.
type Server struct {
	mu      sync.Mutex
	queries []Query
	stdout  string
	// Port is the loopback port it listens on.
	Port int
}

// Default is the session started when the package is initialised.
var Default = start()

func start() *Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fakesession: listen: %v", err))
	}
	s := &Server{Port: l.Addr().(*net.TCPAddr).Port, stdout: defaultStdout}
	for k, v := range map[string]string{"DAGGER_SESSION_PORT": strconv.Itoa(s.Port), "DAGGER_SESSION_TOKEN": Token} {
		if err := os.Setenv(k, v); err != nil {
			panic(err)
		}
	}
	go func() { _ = http.Serve(l, s) }()
	return s
}

const defaultStdout = "fake stdout\n"

// Reset forgets the recorded queries and what SetStdout set.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = nil
	s.stdout = defaultStdout
}

// Queries returns the recorded queries in the order they arrived.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// SetStdout sets what every `stdout` selection answers.
func (s *Server) SetStdout(out string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stdout = out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, _, ok := r.BasicAuth(); !ok || u != Token {
		http.Error(w, "fakesession: wrong or missing session token", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	data, err := s.answer(req.Query, req.Variables)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"message": "fakesession: " + err.Error()}}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

// answer parses one query (a single chain of selections, as the Go SDK
// sends), records it and builds the nested response.
func (s *Server) answer(raw string, vars map[string]any) (map[string]any, error) {
	doc, gerr := parser.ParseQuery(&ast.Source{Input: raw})
	if gerr != nil {
		return nil, gerr
	}
	if len(doc.Operations) != 1 {
		return nil, fmt.Errorf("want one operation, got %d", len(doc.Operations))
	}
	var calls []Call
	var path []string
	set := doc.Operations[0].SelectionSet
	for len(set) > 0 {
		if len(set) != 1 {
			return nil, fmt.Errorf("want a single chain of selections, got %d at %s", len(set), strings.Join(path, "."))
		}
		f, ok := set[0].(*ast.Field)
		if !ok {
			return nil, fmt.Errorf("fragments are not supported")
		}
		c := Call{Field: f.Name}
		if len(f.Arguments) > 0 {
			c.Args = map[string]any{}
			for _, a := range f.Arguments {
				v, err := a.Value.Value(vars)
				if err != nil {
					return nil, err
				}
				c.Args[a.Name] = v
			}
		}
		calls = append(calls, c)
		path = append(path, f.Alias)
		set = f.SelectionSet
	}
	chain, err := expand(calls)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.queries = append(s.queries, Query{Raw: raw, Chain: chain})
	stdout := s.stdout
	s.mu.Unlock()

	var value any = leafValue(chain, stdout)
	for i := len(path) - 1; i >= 0; i-- {
		value = map[string]any{path[i]: value}
	}
	return value.(map[string]any), nil
}

// expand replaces a leading load<T>FromID(id) with the chain the ID encodes.
func expand(calls []Call) ([]Call, error) {
	if len(calls) > 0 && strings.HasPrefix(calls[0].Field, "load") && strings.HasSuffix(calls[0].Field, "FromID") {
		id, _ := calls[0].Args["id"].(string)
		prior, err := DecodeID(id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", calls[0].Field, err)
		}
		return append(prior, calls[1:]...), nil
	}
	return calls, nil
}

func leafValue(chain []Call, stdout string) any {
	leaf := chain[len(chain)-1]
	object := chain[:len(chain)-1]
	switch leaf.Field {
	case "id":
		return EncodeID(object)
	case "sync", "start", "stop":
		return EncodeID(object)
	case "publish":
		addr, _ := leaf.Args["address"].(string)
		sum := sha256.Sum256([]byte(EncodeID(object)))
		return fmt.Sprintf("%s@sha256:%x", addr, sum)
	case "stdout":
		return stdout
	case "commit":
		// A made-up commit id, the same for the same chain, as a git ref's
		// commit is.
		sum := sha256.Sum256([]byte(EncodeID(object)))
		return fmt.Sprintf("%x", sum[:20])
	case "plaintext":
		for _, c := range object {
			if c.Field == "setSecret" {
				return c.Args["plaintext"]
			}
		}
		return nil
	case "endpoint":
		return "kube-api.fake.dagger.local:6443"
	case "defaultPlatform":
		// The fake stands for an amd64 engine, as the project's machines are.
		return "linux/amd64"
	case "exists":
		// A directory built with withNewFile holds exactly those files.
		for _, c := range object {
			if c.Field == "withNewFile" && c.Args["path"] == leaf.Args["path"] {
				return true
			}
		}
		return false
	case "contents":
		if last := object[len(object)-1]; last.Field == "file" {
			for i := len(object) - 2; i >= 0; i-- {
				if object[i].Field == "withNewFile" && object[i].Args["path"] == last.Args["path"] {
					return object[i].Args["contents"]
				}
			}
		}
		for i := len(object) - 1; i >= 0; i-- {
			if object[i].Field == "withNewFile" {
				return object[i].Args["contents"]
			}
		}
		return nil
	}
	return nil
}

// EncodeID makes the ID of the object a chain produces.
func EncodeID(chain []Call) string {
	b, err := json.Marshal(chain)
	if err != nil {
		panic(err)
	}
	return idPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeID returns the chain an ID of this fake encodes.
func DecodeID(id string) ([]Call, error) {
	if !IsID(id) {
		return nil, fmt.Errorf("%q is not an ID of this fake session", id)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id, idPrefix))
	if err != nil {
		return nil, err
	}
	var out []Call
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// IsID tells whether a value is an ID this fake handed out.
func IsID(v any) bool {
	s, ok := v.(string)
	return ok && strings.HasPrefix(s, idPrefix)
}
