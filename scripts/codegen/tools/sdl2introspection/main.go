// Command sdl2introspection turns the Dagger engine's published GraphQL SDL
// (docs/docs-graphql/schema.graphqls in the github.com/dagger/dagger module)
// into the introspection JSON that `codegen --introspection-json-path` reads,
// so the Go bindings can be generated without an engine.
//
// The engine does not serve the SDL as written: every object type also gets
// a `<T>ID` scalar and a `Query.load<T>FromID(id: <T>ID!): <T>!` loader, and
// a module (as opposed to a client library) does not see Host, Engine and
// EngineCache*. -view selects which of the two schemas to produce.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/krgeobuk/krgeobuk-infra/scripts/codegen/tools/sdl2introspection/convert"
)

func main() {
	in := flag.String("sdl", "", "path to schema.graphqls")
	out := flag.String("o", "", "where to write the introspection JSON")
	view := flag.String("view", "module", "module (what a module's code sees) or client (the published library)")
	version := flag.String("schema-version", "", "engine version the SDL belongs to, e.g. v0.21.8")
	flag.Parse()
	if err := run(*in, *out, *view, *version); err != nil {
		fmt.Fprintln(os.Stderr, "sdl2introspection:", err)
		os.Exit(1)
	}
}

func run(in, out, view, version string) error {
	if in == "" || out == "" || version == "" {
		return fmt.Errorf("-sdl, -o and -schema-version are required")
	}
	sdl, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	v, err := convert.ParseView(view)
	if err != nil {
		return err
	}
	data, err := convert.Convert(in, string(sdl), v, version)
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}
