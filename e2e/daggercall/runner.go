package daggercall

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Querier runs raw GraphQL in a session (daggersession.Session satisfies it).
type Querier interface {
	Query(ctx context.Context, query string, vars map[string]any) (json.RawMessage, error)
}

// Module is a module served in a session, with its main object's functions.
type Module struct {
	q         Querier
	Name      string
	field     string // the constructor's field on Query
	Functions map[string]Function
}

// LoadModule loads the module whose dagger.json is in dir, serves it in the session (what
// `dagger call` does first) and reads its function signatures.
func LoadModule(ctx context.Context, q Querier, dir string) (*Module, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := q.Query(ctx, `query($ref: String!) {
  moduleSource(refString: $ref) { configExists moduleName asModule { serve(includeDependencies: true) } }
}`, map[string]any{"ref": abs})
	if err != nil {
		return nil, fmt.Errorf("load module %s: %w", abs, err)
	}
	var src struct {
		ModuleSource struct {
			ConfigExists bool   `json:"configExists"`
			ModuleName   string `json:"moduleName"`
		} `json:"moduleSource"`
	}
	if err := json.Unmarshal(data, &src); err != nil {
		return nil, fmt.Errorf("load module %s: %w", abs, err)
	}
	if !src.ModuleSource.ConfigExists {
		return nil, fmt.Errorf("load module %s: no dagger.json", abs)
	}
	data, err = q.Query(ctx, typeDefsQuery, nil)
	if err != nil {
		return nil, fmt.Errorf("module %s: type definitions: %w", src.ModuleSource.ModuleName, err)
	}
	m, err := parseTypeDefs(data, src.ModuleSource.ModuleName)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", src.ModuleSource.ModuleName, err)
	}
	m.q = q
	return m, nil
}

const typeRefFields = `kind optional asObject { name } asScalar { name } asEnum { name } asInput { name }
  asList { elementTypeDef { kind optional asObject { name } asScalar { name } asEnum { name } } }`

var typeDefsQuery = `{ currentTypeDefs(returnAllTypes: true, hideCore: true) {
  kind
  asObject { name sourceModuleName functions { name returnType { ` + typeRefFields + ` }
    args { name defaultValue defaultPath typeDef { ` + typeRefFields + ` } } } }
} }`

type typeDefJSON struct {
	Kind     string                 `json:"kind"`
	Optional bool                   `json:"optional"`
	AsObject *struct{ Name string } `json:"asObject"`
	AsScalar *struct{ Name string } `json:"asScalar"`
	AsEnum   *struct{ Name string } `json:"asEnum"`
	AsInput  *struct{ Name string } `json:"asInput"`
	AsList   *struct {
		ElementTypeDef *typeDefJSON `json:"elementTypeDef"`
	} `json:"asList"`
}

func (t *typeDefJSON) ref() TypeRef {
	r := TypeRef{Kind: t.Kind, Optional: t.Optional}
	switch {
	case t.AsObject != nil:
		r.Name = t.AsObject.Name
	case t.AsScalar != nil:
		r.Name = t.AsScalar.Name
	case t.AsEnum != nil:
		r.Name = t.AsEnum.Name
	case t.AsInput != nil:
		r.Name = t.AsInput.Name
	case t.AsList != nil && t.AsList.ElementTypeDef != nil:
		e := t.AsList.ElementTypeDef.ref()
		r.Elem = &e
	}
	return r
}

// parseTypeDefs finds the module's main object: the return type of Query's constructor field
// for the module, whose functions are what `dagger call` lists.
func parseTypeDefs(data json.RawMessage, moduleName string) (*Module, error) {
	var td struct {
		CurrentTypeDefs []struct {
			Kind     string `json:"kind"`
			AsObject *struct {
				Name             string `json:"name"`
				SourceModuleName string `json:"sourceModuleName"`
				Functions        []struct {
					Name       string      `json:"name"`
					ReturnType typeDefJSON `json:"returnType"`
					Args       []struct {
						Name         string      `json:"name"`
						DefaultValue string      `json:"defaultValue"`
						DefaultPath  string      `json:"defaultPath"`
						TypeDef      typeDefJSON `json:"typeDef"`
					} `json:"args"`
				} `json:"functions"`
			} `json:"asObject"`
		} `json:"currentTypeDefs"`
	}
	if err := json.Unmarshal(data, &td); err != nil {
		return nil, err
	}
	field := lowerFirst(camel(moduleName))
	objects := map[string][]Function{}
	var mainType string
	for _, t := range td.CurrentTypeDefs {
		if t.AsObject == nil {
			continue
		}
		var fns []Function
		for _, f := range t.AsObject.Functions {
			fn := Function{Name: f.Name, Return: f.ReturnType.ref()}
			for _, a := range f.Args {
				arg := Arg{Name: a.Name, Type: a.TypeDef.ref(), Default: a.DefaultValue, HasPath: a.DefaultPath != ""}
				arg.Required = !arg.Type.Optional && arg.Default == "" && !arg.HasPath
				fn.Args = append(fn.Args, arg)
			}
			fns = append(fns, fn)
			if t.AsObject.Name == "Query" && f.Name == field {
				mainType = fn.Return.Name
			}
		}
		objects[t.AsObject.Name] = fns
	}
	if mainType == "" {
		return nil, fmt.Errorf("no constructor field %q on Query: is the module served?", field)
	}
	m := &Module{Name: moduleName, field: field, Functions: map[string]Function{}}
	for _, fn := range objects[mainType] {
		m.Functions[fn.Name] = fn
	}
	return m, nil
}

// Call runs one function of the module's main object with `dagger call`-style flags (function
// name in kebab or camel case). It returns the function's output: a string, a JSON list or an
// object's ID (containers, directories and files are synced first, as `dagger call` does).
func (m *Module) Call(ctx context.Context, function string, argv []string) (string, error) {
	fn, ok := m.Functions[function]
	if !ok {
		fn, ok = m.Functions[lowerFirst(camel(function))]
	}
	if !ok {
		return "", fmt.Errorf("module %s has no function %q", m.Name, function)
	}
	flags, err := ParseFlags(fn, argv)
	if err != nil {
		return "", err
	}
	args, err := RenderArgs(ctx, fn, flags, resolver{q: m.q})
	if err != nil {
		return "", err
	}
	sel := selection(fn.Return)
	data, err := m.q.Query(ctx, fmt.Sprintf("{ %s { %s%s %s } }", m.field, fn.Name, args, sel), nil)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", m.Name, Kebab(fn.Name), err)
	}
	var out map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("%s %s: %w", m.Name, Kebab(fn.Name), err)
	}
	return output(out[m.field][fn.Name], fn.Return)
}

// selection picks what to read from a function's result.
func selection(t TypeRef) string {
	if t.Kind == KindObject {
		switch t.Name {
		case "Container", "Directory", "File":
			return "{ sync }"
		}
		return "{ id }"
	}
	if t.Kind == KindList && t.Elem != nil && t.Elem.Kind == KindObject {
		return "{ id }"
	}
	return ""
}

func output(raw json.RawMessage, t TypeRef) (string, error) {
	switch {
	case t.Kind == KindVoid || len(raw) == 0 || string(raw) == "null":
		return "", nil
	case t.Kind == KindObject:
		var o map[string]string
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", err
		}
		if id, ok := o["sync"]; ok {
			return id, nil
		}
		return o["id"], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	return string(raw), nil
}

// resolver makes object IDs from flag values in the session.
type resolver struct{ q Querier }

// SessionResolver is the Resolver Call uses: it makes object IDs in the session behind q.
func SessionResolver(q Querier) Resolver { return resolver{q: q} }

func (r resolver) id(ctx context.Context, query string, vars map[string]any, path ...string) (string, error) {
	data, err := r.q.Query(ctx, query, vars)
	if err != nil {
		return "", err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return "", err
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("unexpected response shape at %s", p)
		}
		v = m[p]
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("no ID in response")
	}
	return s, nil
}

func (r resolver) Directory(ctx context.Context, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return r.id(ctx, `query($p: String!) { host { directory(path: $p) { id } } }`, map[string]any{"p": abs}, "host", "directory", "id")
}

func (r resolver) File(ctx context.Context, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return r.id(ctx, `query($p: String!) { host { file(path: $p) { id } } }`, map[string]any{"p": abs}, "host", "file", "id")
}

func (r resolver) Secret(ctx context.Context, name, plaintext string) (string, error) {
	// The value is a query variable, never part of the query text or an error.
	id, err := r.id(ctx, `query($n: String!, $v: String!) { setSecret(name: $n, plaintext: $v) { id } }`,
		map[string]any{"n": "krgeobuk-call-" + name, "v": plaintext}, "setSecret", "id")
	if err != nil && plaintext != "" {
		err = fmt.Errorf("%s", strings.ReplaceAll(err.Error(), plaintext, "***"))
	}
	return id, err
}

func (r resolver) Service(ctx context.Context, host string, port int) (string, error) {
	return r.id(ctx, `query($h: String!, $p: Int!) { host { service(host: $h, ports: [{frontend: $p, backend: $p}]) { id } } }`,
		map[string]any{"h": host, "p": port}, "host", "service", "id")
}

func (r resolver) Container(ctx context.Context, address string) (string, error) {
	return r.id(ctx, `query($a: String!) { container { from(address: $a) { id } } }`, map[string]any{"a": address}, "container", "from", "id")
}

func camel(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == ' ' })
	for i, p := range parts {
		if i > 0 && p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
