package main

// Helpers for the contract tests: every test here talks to the FAKE session
// of package fakesession (imported for its side effect of exporting the
// session variables before the generated client starts). The fake runs
// nothing; it records the queries a function sends.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"dagger/krgeobuk/internal/fakesession"
)

var fake = fakesession.Default

// recordFrom forgets earlier queries so a test sees only its own.
func recordFrom(t *testing.T) {
	t.Helper()
	fake.Reset()
	t.Cleanup(fake.Reset)
}

// flat returns a chain's calls with every call of every object passed by ID
// as an argument inlined before the call that received it.
func flat(chain []fakesession.Call) []fakesession.Call {
	var out []fakesession.Call
	for _, c := range chain {
		for _, v := range c.Args {
			for _, id := range ids(v) {
				inner, err := fakesession.DecodeID(id)
				if err != nil {
					panic(err)
				}
				out = append(out, flat(inner)...)
			}
		}
		out = append(out, c)
	}
	return out
}

func ids(v any) []string {
	switch t := v.(type) {
	case string:
		if fakesession.IsID(t) {
			return []string{t}
		}
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, ids(e)...)
		}
		return out
	}
	return nil
}

// chainOf decodes the ID of a returned object.
func chainOf(t *testing.T, id string) []fakesession.Call {
	t.Helper()
	c, err := fakesession.DecodeID(id)
	require.NoError(t, err)
	return c
}

// calls returns the calls named field, in order.
func calls(chain []fakesession.Call, field string) []fakesession.Call {
	var out []fakesession.Call
	for _, c := range chain {
		if c.Field == field {
			out = append(out, c)
		}
	}
	return out
}

// argList returns one string argument of every call named field.
func argList(chain []fakesession.Call, field, arg string) []string {
	var out []string
	for _, c := range calls(chain, field) {
		out = append(out, fmt.Sprint(c.Args[arg]))
	}
	return out
}

// execs returns every withExec's args joined by spaces.
func execs(chain []fakesession.Call) []string {
	var out []string
	for _, c := range calls(chain, "withExec") {
		var parts []string
		for _, a := range c.Args["args"].([]any) {
			parts = append(parts, fmt.Sprint(a))
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// envVars maps withEnvVariable names to values, and lists withSecretVariable names.
func envVars(chain []fakesession.Call) (plain map[string]string, secret []string) {
	plain = map[string]string{}
	for _, c := range calls(chain, "withEnvVariable") {
		plain[fmt.Sprint(c.Args["name"])] = fmt.Sprint(c.Args["value"])
	}
	for _, c := range calls(chain, "withSecretVariable") {
		secret = append(secret, fmt.Sprint(c.Args["name"]))
	}
	return plain, secret
}

// requireNoPlaintextOutsideSetSecret fails if any recorded query carries a
// secret value anywhere but in the setSecret call that created it.
func requireNoPlaintextOutsideSetSecret(t *testing.T, secrets []string) {
	t.Helper()
	for _, q := range fake.Queries() {
		for _, c := range flat(q.Chain) {
			if c.Field == "setSecret" {
				continue
			}
			for _, s := range secrets {
				require.NotContains(t, fmt.Sprint(c.Args), s, "a secret value leaked into %s(%v)", c.Field, c.Args)
			}
		}
		for _, s := range secrets {
			if !strings.Contains(q.Raw, "setSecret") {
				require.NotContains(t, q.Raw, s, "a secret value leaked into a query")
			}
		}
	}
}
