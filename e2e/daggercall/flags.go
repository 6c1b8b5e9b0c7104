// Package daggercall loads a Dagger module into a session and calls its functions with
// `dagger call`-style flags, without the dagger CLI.
package daggercall

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Type kinds as the engine's TypeDef.kind reports them.
const (
	KindString  = "STRING_KIND"
	KindInteger = "INTEGER_KIND"
	KindFloat   = "FLOAT_KIND"
	KindBoolean = "BOOLEAN_KIND"
	KindScalar  = "SCALAR_KIND"
	KindEnum    = "ENUM_KIND"
	KindList    = "LIST_KIND"
	KindObject  = "OBJECT_KIND"
	KindVoid    = "VOID_KIND"
)

// TypeRef is the part of a TypeDef the conversion needs.
type TypeRef struct {
	Kind     string
	Name     string // object, scalar or enum name
	Optional bool
	Elem     *TypeRef // for lists
}

// Arg is one function argument.
type Arg struct {
	Name     string
	Type     TypeRef
	Default  string // JSON; empty when the argument has no default
	HasPath  bool   // a defaultPath: the engine fills it from the module's context
	Required bool
}

// Function is one function of the module's main object.
type Function struct {
	Name   string
	Args   []Arg
	Return TypeRef
}

// Resolver turns flag values that name host or engine things into object IDs.
type Resolver interface {
	Directory(ctx context.Context, path string) (string, error)
	File(ctx context.Context, path string) (string, error)
	Secret(ctx context.Context, name, plaintext string) (string, error)
	Service(ctx context.Context, host string, port int) (string, error)
	Container(ctx context.Context, address string) (string, error)
}

// Kebab is the flag name `dagger call` uses for an argument: imageTag → image-tag.
func Kebab(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ParseFlags groups argv (`--name value`, `--name=value`, a bare `--bool`, repeated flags for
// lists) by argument name, and checks names and required arguments before anything runs.
func ParseFlags(fn Function, argv []string) (map[string][]string, error) {
	byFlag := map[string]Arg{}
	for _, a := range fn.Args {
		byFlag[Kebab(a.Name)] = a
	}
	out := map[string][]string{}
	for i := 0; i < len(argv); i++ {
		tok := argv[i]
		if !strings.HasPrefix(tok, "--") || tok == "--" {
			return nil, fmt.Errorf("%s: unexpected argument %q (want --flag value)", fn.Name, tok)
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(tok, "--"), "=")
		a, ok := byFlag[name]
		if !ok {
			return nil, fmt.Errorf("%s: unknown flag --%s (known: %s)", fn.Name, name, knownFlags(fn))
		}
		if !hasValue {
			if a.Type.Kind == KindBoolean && (i+1 == len(argv) || strings.HasPrefix(argv[i+1], "--")) {
				value = "true"
			} else if i+1 < len(argv) {
				i++
				value = argv[i]
			} else {
				return nil, fmt.Errorf("%s: flag --%s needs a value", fn.Name, name)
			}
		}
		if a.Type.Kind != KindList && len(out[a.Name]) > 0 {
			return nil, fmt.Errorf("%s: flag --%s given twice", fn.Name, name)
		}
		out[a.Name] = append(out[a.Name], value)
	}
	for _, a := range fn.Args {
		if a.Required && len(out[a.Name]) == 0 {
			return nil, fmt.Errorf("%s: missing required flag --%s", fn.Name, Kebab(a.Name))
		}
	}
	return out, nil
}

func knownFlags(fn Function) string {
	names := make([]string, len(fn.Args))
	for i, a := range fn.Args {
		names[i] = "--" + Kebab(a.Name)
	}
	return strings.Join(names, " ")
}

// RenderArgs converts parsed flags into a GraphQL argument list such as
// `(env: "staging", kubeconfig: "<secret id>")`; object arguments are resolved through r.
// Secret values travel only to r.Secret, never into the returned text.
func RenderArgs(ctx context.Context, fn Function, flags map[string][]string, r Resolver) (string, error) {
	var parts []string
	for _, a := range fn.Args {
		vals, ok := flags[a.Name]
		if !ok {
			continue
		}
		lit, err := literal(ctx, a, a.Type, vals, r)
		if err != nil {
			return "", fmt.Errorf("%s: --%s: %w", fn.Name, Kebab(a.Name), err)
		}
		parts = append(parts, a.Name+": "+lit)
	}
	if len(parts) == 0 {
		return "", nil
	}
	return "(" + strings.Join(parts, ", ") + ")", nil
}

func literal(ctx context.Context, a Arg, t TypeRef, vals []string, r Resolver) (string, error) {
	if t.Kind == KindList {
		if t.Elem == nil {
			return "", fmt.Errorf("list type without element type")
		}
		items := make([]string, 0, len(vals))
		for _, v := range vals {
			lit, err := literal(ctx, a, *t.Elem, []string{v}, r)
			if err != nil {
				return "", err
			}
			items = append(items, lit)
		}
		return "[" + strings.Join(items, ", ") + "]", nil
	}
	v := vals[0]
	switch t.Kind {
	case KindString, KindScalar:
		return quote(v), nil
	case KindInteger:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "", fmt.Errorf("%q is not an integer", v)
		}
		return v, nil
	case KindFloat:
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("%q is not a number", v)
		}
		return v, nil
	case KindBoolean:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("%q is not a boolean", v)
		}
		return strconv.FormatBool(b), nil
	case KindEnum:
		if !isName(v) {
			return "", fmt.Errorf("%q is not a %s value", v, t.Name)
		}
		return v, nil
	case KindObject:
		id, err := resolveObject(ctx, a, t.Name, v, r)
		if err != nil {
			return "", err
		}
		return quote(id), nil
	}
	return "", fmt.Errorf("arguments of kind %s are not supported", t.Kind)
}

func resolveObject(ctx context.Context, a Arg, typeName, v string, r Resolver) (string, error) {
	switch typeName {
	case "Directory":
		return r.Directory(ctx, v)
	case "File":
		return r.File(ctx, v)
	case "Container":
		return r.Container(ctx, v)
	case "Secret":
		plain, err := secretValue(v)
		if err != nil {
			return "", err
		}
		return r.Secret(ctx, a.Name, plain)
	case "Service":
		host, port, err := serviceAddr(v)
		if err != nil {
			return "", err
		}
		return r.Service(ctx, host, port)
	}
	return "", fmt.Errorf("arguments of type %s are not supported", typeName)
}

// secretValue reads a secret the way `dagger call` names it: env:NAME or file:PATH. Errors never
// contain the value.
func secretValue(v string) (string, error) {
	kind, ref, ok := strings.Cut(v, ":")
	if !ok {
		return "", fmt.Errorf("secret must be env:NAME or file:PATH")
	}
	switch kind {
	case "env":
		val, ok := os.LookupEnv(ref)
		if !ok {
			return "", fmt.Errorf("secret env:%s: variable not set", ref)
		}
		return val, nil
	case "file":
		b, err := os.ReadFile(ref)
		if err != nil {
			return "", fmt.Errorf("secret file:%s: %w", ref, err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("secret source %q: want env:NAME or file:PATH", kind)
}

// serviceAddr parses tcp://host:port.
func serviceAddr(v string) (string, int, error) {
	rest, ok := strings.CutPrefix(v, "tcp://")
	if !ok {
		return "", 0, fmt.Errorf("service %q: want tcp://HOST:PORT", v)
	}
	host, portStr, err := net.SplitHostPort(rest)
	if err != nil {
		return "", 0, fmt.Errorf("service %q: %w", v, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("service %q: bad port", v)
	}
	return host, port, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid GraphQL string literal
	return string(b)
}

func isName(s string) bool {
	for i, r := range s {
		if !(r == '_' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return false
		}
	}
	return s != ""
}
