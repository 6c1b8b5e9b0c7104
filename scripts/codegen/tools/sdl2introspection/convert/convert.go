// Package convert builds codegen's introspection types from a GraphQL SDL
// document, adding what the Dagger engine adds when it serves the schema.
package convert

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dagger/dagger/cmd/codegen/introspection"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// View selects which schema the engine would serve.
type View string

const (
	// ViewModule is what module code sees: no Host, Engine or EngineCache*.
	ViewModule View = "module"
	// ViewClient is what a client library (dagger.io/dagger) sees.
	ViewClient View = "client"
)

// hiddenFromModules are the types a module's code cannot reach. Scrubbing a
// type also drops every field and argument that refers to it.
var hiddenFromModules = []string{"Host", "Engine", "EngineCache", "EngineCacheEntry", "EngineCacheEntrySet"}

const idDescription = "A unique identifier for an object."

// ParseView accepts the names of the views.
func ParseView(s string) (View, error) {
	switch v := View(s); v {
	case ViewModule, ViewClient:
		return v, nil
	}
	return "", fmt.Errorf("unknown view %q (want %q or %q)", s, ViewModule, ViewClient)
}

// Convert parses sdl and returns the introspection response JSON for view,
// with __schemaVersion set to version. The output is deterministic: types
// sorted by name, members in SDL order, stable indentation.
func Convert(name, sdl string, view View, version string) ([]byte, error) {
	resp, err := Build(name, sdl, view, version)
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(resp, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Build is Convert without the encoding.
func Build(name, sdl string, view View, version string) (*introspection.Response, error) {
	if _, err := ParseView(string(view)); err != nil {
		return nil, err
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: name, Input: sdl})
	if gerr != nil {
		return nil, fmt.Errorf("parse %s: %w", name, gerr)
	}
	if schema.Query == nil {
		return nil, fmt.Errorf("%s: no Query type", name)
	}
	addIDScalarsAndLoaders(schema)
	c := converter{schema: schema}

	out := &introspection.Schema{Types: introspection.Types{}}
	out.QueryType.Name = schema.Query.Name
	names := make([]string, 0, len(schema.Types))
	for n := range schema.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out.Types = append(out.Types, c.convertType(schema.Types[n]))
	}
	dirNames := make([]string, 0, len(schema.Directives))
	for n := range schema.Directives {
		dirNames = append(dirNames, n)
	}
	sort.Strings(dirNames)
	for _, n := range dirNames {
		d := schema.Directives[n]
		def := &introspection.DirectiveDef{Name: d.Name, Description: unwrap(d.Description, 0), Args: introspection.InputValues{}}
		for _, loc := range d.Locations {
			def.Locations = append(def.Locations, string(loc))
		}
		for _, a := range d.Arguments {
			def.Args = append(def.Args, c.convertArg(2, a.Name, a.Description, a.Type, a.DefaultValue, a.Directives))
		}
		out.Directives = append(out.Directives, def)
	}
	if view == ViewModule {
		for _, t := range hiddenFromModules {
			out.ScrubType(t)
			out.ScrubType(t + "ID")
		}
		dropExpecting(out, hiddenFromModules)
	}
	return &introspection.Response{Schema: out, SchemaVersion: version}, nil
}

// dropExpecting removes the fields that return, or take as an argument, an
// ID of one of the hidden types (@expectedType), which ScrubType cannot see:
// their type is the generic ID.
func dropExpecting(s *introspection.Schema, hidden []string) {
	hides := func(d introspection.Directives) bool { return slices.Contains(hidden, d.ExpectedType()) }
	for _, t := range s.Types {
		kept := t.Fields[:0]
		for _, f := range t.Fields {
			drop := hides(f.Directives)
			for _, a := range f.Args {
				drop = drop || hides(a.Directives)
			}
			if !drop {
				kept = append(kept, f)
			}
		}
		t.Fields = kept
	}
}

// addIDScalarsAndLoaders adds, for every object type and interface (but Node)
// that carries an id, the `<T>ID` scalar and Query.load<T>FromID, as the
// engine does when it serves the schema. The generic ID scalar gets the
// engine's description.
func addIDScalarsAndLoaders(schema *ast.Schema) {
	var names []string
	for n, d := range schema.Types {
		if d.BuiltIn || strings.HasPrefix(n, "_") || n == schema.Query.Name {
			continue
		}
		// Node is the interface every object implements; it has no ID of its own.
		if n != "Node" && (d.Kind == ast.Object || d.Kind == ast.Interface) && d.Fields.ForName("id") != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if id, ok := schema.Types["ID"]; ok {
		id.Description = idDescription
	}
	for _, n := range names {
		idName := n + "ID"
		if _, exists := schema.Types[idName]; !exists {
			schema.Types[idName] = &ast.Definition{
				Kind:        ast.Scalar,
				Name:        idName,
				Description: idDescription,
			}
		}
		loader := "load" + n + "FromID"
		if schema.Query.Fields.ForName(loader) != nil {
			continue
		}
		schema.Query.Fields = append(schema.Query.Fields, &ast.FieldDefinition{
			Name:        loader,
			Description: fmt.Sprintf("Load a %s from its ID.", n),
			Arguments: ast.ArgumentDefinitionList{{
				Name: "id",
				Type: ast.NonNullNamedType(idName, nil),
			}},
			Type: ast.NonNullNamedType(n, nil),
		})
	}
}

func (c converter) convertType(d *ast.Definition) *introspection.Type {
	t := &introspection.Type{
		Kind:        kindOf(d.Kind),
		Name:        d.Name,
		Description: unwrap(d.Description, 0),
		Directives:  convertDirectives(d.Directives),
	}
	switch d.Kind {
	case ast.Object, ast.Interface:
		t.Fields = []*introspection.Field{}
		for _, f := range d.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			field := &introspection.Field{
				Name:        f.Name,
				Description: unwrap(f.Description, 2),
				TypeRef:     c.typeRef(f.Type),
				Args:        introspection.InputValues{},
				Directives:  convertDirectives(f.Directives),
			}
			field.IsDeprecated, field.DeprecationReason = deprecation(f.Directives)
			for _, a := range f.Arguments {
				field.Args = append(field.Args, c.convertArg(4, a.Name, a.Description, a.Type, a.DefaultValue, a.Directives))
			}
			t.Fields = append(t.Fields, field)
		}
		t.Interfaces = []*introspection.Type{}
		for _, i := range d.Interfaces {
			t.Interfaces = append(t.Interfaces, &introspection.Type{Kind: kindOf(c.schema.Types[i].Kind), Name: i})
		}
		if d.Kind == ast.Interface {
			t.PossibleTypes = possible(c.schema, d)
		}
	case ast.Union:
		t.PossibleTypes = possible(c.schema, d)
	case ast.InputObject:
		for _, f := range d.Fields {
			t.InputFields = append(t.InputFields, c.convertArg(2, f.Name, f.Description, f.Type, f.DefaultValue, f.Directives))
		}
	case ast.Enum:
		for _, v := range d.EnumValues {
			ev := introspection.EnumValue{Name: v.Name, Description: unwrap(v.Description, 2), Directives: convertDirectives(v.Directives)}
			ev.IsDeprecated, ev.DeprecationReason = deprecation(v.Directives)
			t.EnumValues = append(t.EnumValues, ev)
		}
	}
	return t
}

func possible(schema *ast.Schema, d *ast.Definition) []*introspection.Type {
	out := []*introspection.Type{}
	for _, p := range schema.GetPossibleTypes(d) {
		out = append(out, &introspection.Type{Kind: kindOf(p.Kind), Name: p.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c converter) convertArg(indent int, name, desc string, typ *ast.Type, def *ast.Value, dirs ast.DirectiveList) introspection.InputValue {
	v := introspection.InputValue{
		Name:        name,
		Description: unwrap(desc, indent),
		TypeRef:     c.typeRef(typ),
		Directives:  convertDirectives(dirs),
	}
	if def != nil {
		s := def.String()
		v.DefaultValue = &s
	}
	v.IsDeprecated, v.DeprecationReason = deprecation(dirs)
	return v
}

// converter carries the parsed schema so type references can name their kind.
type converter struct{ schema *ast.Schema }

func deprecation(dirs ast.DirectiveList) (bool, *string) {
	d := dirs.ForName("deprecated")
	if d == nil {
		return false, nil
	}
	reason := "No longer supported"
	if a := d.Arguments.ForName("reason"); a != nil && a.Value != nil {
		reason = a.Value.Raw
	}
	return true, &reason
}

// convertDirectives renders applied directives the way the engine's
// _DirectiveApplication does: argument values as JSON.
func convertDirectives(dirs ast.DirectiveList) introspection.Directives {
	out := introspection.Directives{}
	for _, d := range dirs {
		if d.Name == "deprecated" {
			continue // reported through isDeprecated/deprecationReason
		}
		app := &introspection.Directive{Name: d.Name, Args: []*introspection.DirectiveArg{}}
		for _, a := range d.Arguments {
			val, err := a.Value.Value(nil)
			if err != nil {
				panic(fmt.Sprintf("directive @%s(%s): %v", d.Name, a.Name, err))
			}
			b, err := json.Marshal(val)
			if err != nil {
				panic(fmt.Sprintf("directive @%s(%s): %v", d.Name, a.Name, err))
			}
			s := string(b)
			app.Args = append(app.Args, &introspection.DirectiveArg{Name: a.Name, Value: &s})
		}
		out = append(out, app)
	}
	return out
}

func (c converter) typeRef(t *ast.Type) *introspection.TypeRef {
	var inner *introspection.TypeRef
	if t.Elem != nil {
		inner = &introspection.TypeRef{Kind: introspection.TypeKindList, OfType: c.typeRef(t.Elem)}
	} else {
		inner = &introspection.TypeRef{Kind: c.kindOfName(t.NamedType), Name: t.NamedType}
	}
	if t.NonNull {
		return &introspection.TypeRef{Kind: introspection.TypeKindNonNull, OfType: inner}
	}
	return inner
}

func (c converter) kindOfName(name string) introspection.TypeKind {
	if d, ok := c.schema.Types[name]; ok {
		return kindOf(d.Kind)
	}
	panic(fmt.Sprintf("type %s is referenced but not defined", name))
}

func kindOf(k ast.DefinitionKind) introspection.TypeKind {
	switch k {
	case ast.Scalar:
		return introspection.TypeKindScalar
	case ast.Object:
		return introspection.TypeKindObject
	case ast.Interface:
		return introspection.TypeKindInterface
	case ast.Union:
		return introspection.TypeKindUnion
	case ast.Enum:
		return introspection.TypeKindEnum
	case ast.InputObject:
		return introspection.TypeKindInputObject
	}
	panic(fmt.Sprintf("unknown definition kind %q", k))
}
