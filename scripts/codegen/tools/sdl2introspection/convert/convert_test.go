package convert

import (
	"encoding/json"
	"testing"

	"github.com/dagger/dagger/cmd/codegen/introspection"
	"github.com/stretchr/testify/require"
)

const sdl = `
"""Where this object was defined."""
directive @expectedType(name: String!) on ARGUMENT_DEFINITION | FIELD_DEFINITION

interface Node {
  id: ID!
}

"""An OCI container."""
type Container implements Node {
  id: ID!

  """Mount a cache volume."""
  withMountedCache(
    """Where to mount it."""
    path: String!
    cache: ID! @expectedType(name: "CacheVolume")
    sharing: CacheSharingMode = SHARED
    expand: Boolean = false @deprecated(reason: "always on")
  ): Container!
}

type CacheVolume implements Node {
  id: ID!
}

"""The host."""
type Host implements Node {
  id: ID!
  directory(path: String!): Container!
}

enum CacheSharingMode {
  SHARED
  LOCKED @deprecated(reason: "use PRIVATE")
}

type Query implements Node {
  id: ID!
  container: Container!
  host: Host!
  withHost(host: ID! @expectedType(name: "Host")): Container!
}
`

func build(t *testing.T, view View) *introspection.Schema {
	t.Helper()
	resp, err := Build("test.graphqls", sdl, view, "v0.21.8")
	require.NoError(t, err)
	require.Equal(t, "v0.21.8", resp.SchemaVersion)
	return resp.Schema
}

func TestModuleViewHidesHostAndAddsIDs(t *testing.T) {
	s := build(t, ViewModule)
	require.Nil(t, s.Types.Get("Host"), "modules cannot reach the host")
	require.Nil(t, s.Types.Get("HostID"))
	q := s.Types.Get("Query")
	for _, f := range q.Fields {
		require.NotContains(t, []string{"host", "withHost", "loadHostFromID"}, f.Name, "fields reaching Host are scrubbed")
	}
	require.Nil(t, s.Types.Get("NodeID"), "Node has no ID of its own")

	for _, name := range []string{"Container", "CacheVolume"} {
		id := s.Types.Get(name + "ID")
		require.NotNil(t, id, name+"ID")
		require.Equal(t, introspection.TypeKindScalar, id.Kind)
		require.Equal(t, "A unique identifier for an object.", id.Description)
		var loader *introspection.Field
		for _, f := range q.Fields {
			if f.Name == "load"+name+"FromID" {
				loader = f
			}
		}
		require.NotNil(t, loader, "Query.load%sFromID", name)
		require.Equal(t, "Load a "+name+" from its ID.", loader.Description)
		require.Equal(t, introspection.TypeKindNonNull, loader.Args[0].TypeRef.Kind)
		require.Equal(t, name+"ID", loader.Args[0].TypeRef.OfType.Name)
		require.Equal(t, name, loader.TypeRef.OfType.Name)
	}
	require.Equal(t, "A unique identifier for an object.", s.Types.Get("ID").Description)
}

func TestClientViewKeepsHost(t *testing.T) {
	s := build(t, ViewClient)
	require.NotNil(t, s.Types.Get("Host"))
	require.NotNil(t, s.Types.Get("HostID"))
}

func TestArgumentsDirectivesAndDeprecation(t *testing.T) {
	s := build(t, ViewModule)
	var f *introspection.Field
	for _, x := range s.Types.Get("Container").Fields {
		if x.Name == "withMountedCache" {
			f = x
		}
	}
	require.NotNil(t, f)
	require.Equal(t, "Mount a cache volume.", f.Description)
	args := map[string]introspection.InputValue{}
	for _, a := range f.Args {
		args[a.Name] = a
	}
	require.Equal(t, "Where to mount it.", args["path"].Description)
	d := args["cache"].Directives.Directive("expectedType")
	require.NotNil(t, d)
	require.Equal(t, `"CacheVolume"`, *d.Arg("name"), "directive arguments are JSON, as the engine serves them")
	cacheDirs := args["cache"].Directives
	require.Equal(t, "CacheVolume", cacheDirs.ExpectedType())
	require.Equal(t, "SHARED", *args["sharing"].DefaultValue)
	require.Equal(t, introspection.TypeKindEnum, args["sharing"].TypeRef.Kind)
	require.True(t, args["expand"].IsDeprecated)
	require.Equal(t, "always on", *args["expand"].DeprecationReason)
	require.Nil(t, args["expand"].Directives.Directive("deprecated"), "deprecation is reported by its own fields")

	e := s.Types.Get("CacheSharingMode")
	require.True(t, e.EnumValues[1].IsDeprecated)

	out, err := Convert("test.graphqls", sdl, ViewModule, "v0.21.8")
	require.NoError(t, err)
	var resp introspection.Response
	require.NoError(t, json.Unmarshal(out, &resp), "the output is what codegen reads")
	again, err := Convert("test.graphqls", sdl, ViewModule, "v0.21.8")
	require.NoError(t, err)
	require.Equal(t, string(out), string(again), "deterministic output")
}

func TestRejects(t *testing.T) {
	_, err := Build("x", "type Query { a: Missing }", ViewModule, "v1")
	require.ErrorContains(t, err, "parse x")
	_, err = ParseView("engine")
	require.ErrorContains(t, err, `unknown view "engine"`)
}

func TestUnwrap(t *testing.T) {
	long := "Execute the command with all root capabilities. This is similar to running a\ncommand with sudo."
	tests := []struct {
		name, in string
		indent   int
		want     string
	}{
		{"printer wrap is joined", long, 0, "Execute the command with all root capabilities. This is similar to running a command with sudo."},
		{"a break where the next word fits was written by hand", "Short line.\nNext line.", 0, "Short line.\nNext line."},
		{"indentation counts toward the width", "Replace the args according to the current environment variables defined\nwithin it.", 4,
			"Replace the args according to the current environment variables defined within it."},
		{"without indentation the same break was by hand", "Replace the args according to the current environment variables defined\nwithin it.", 0,
			"Replace the args according to the current environment variables defined\nwithin it."},
		{"paragraphs stay apart", long + "\n\nSecond.", 0,
			"Execute the command with all root capabilities. This is similar to running a command with sudo.\n\nSecond."},
		{"list items stay on their lines", "Kinds of things that are available in the schema, each one a line long:\n- one\n- two", 0,
			"Kinds of things that are available in the schema, each one a line long:\n- one\n- two"},
		{"a paragraph wider than the printer was hand-written", "A graphql input type, which is essentially just a group of named args.\nThis is currently only used to represent pre-existing usage of graphql input types\nin the core API.", 0,
			"A graphql input type, which is essentially just a group of named args.\nThis is currently only used to represent pre-existing usage of graphql input types\nin the core API."},
		{"fenced code is kept", "Example of a long enough line that the printer would have had to wrap it right\n```\ncode here\nmore\n```", 0,
			"Example of a long enough line that the printer would have had to wrap it right\n```\ncode here\nmore\n```"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, unwrap(tt.in, tt.indent))
		})
	}
}
