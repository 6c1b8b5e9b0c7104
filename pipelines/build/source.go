package build

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// SourceKind says where a service's source comes from.
type SourceKind string

const (
	// FromDirectory is a checkout the caller hands over (a host directory).
	FromDirectory SourceKind = "directory"
	// FromGit is a remote and a ref the engine fetches with its own git.
	FromGit SourceKind = "git"
	// FromExample is this repository's example of the service's kind, used
	// only when asked for by name and only where ExamplesAllowed says so.
	FromExample SourceKind = "example"
)

// Examples are the example sources in this repository, by service kind.
var Examples = map[catalog.Kind]string{
	catalog.KindAPI: "examples/auth-api",
	catalog.KindSPA: "examples/spa",
}

// ExampleEnvironments are the only environments a build from the examples
// may be made for. An allowlist, so an environment added later (or a typo)
// never receives an example app: staging and production never do.
var ExampleEnvironments = []string{"development"}

// ExamplesAllowed says whether env may be built from the examples.
func ExamplesAllowed(env string) bool { return slices.Contains(ExampleEnvironments, env) }

// ExampleLabel marks an image built from an example, naming the example.
const ExampleLabel = "dev.krgeobuk.example"

// Source is where one service's source comes from.
type Source struct {
	Kind SourceKind
	// Example is the repository path of the example (FromExample).
	Example string
	// URL and Ref are the git remote and the branch, tag or commit to build
	// (FromGit).
	URL, Ref string
}

// SourceArgs are the source arguments of one call, as a door received them.
type SourceArgs struct {
	// Env is the environment the build is for; examples are refused unless
	// ExamplesAllowed(Env).
	Env string
	// Services are the services to build; empty means all.
	Services []string
	// Directories name the services given a checkout directory.
	Directories []string
	// Git are service=URL#REF pairs.
	Git []string
	// Examples name the services to build from the examples.
	Examples []string
	// One is set by a door that builds a single service with its own flags
	// (--source DIR, --git URL#REF, --example); messages then use those.
	One bool
}

// flags name each way of giving a service's source, as the door spells it.
func (a SourceArgs) flags(svc string) (dir, git, example string) {
	if a.One {
		return "--source DIR", "--git URL#REF", "--example"
	}
	return DirectoryFlag(svc) + " DIR", "--git " + svc + "=URL#REF", "--example " + svc
}

// DirectoryFlag is the Dagger module's flag giving a service's checkout:
// --auth-server-source for auth-server.
func DirectoryFlag(service string) string { return "--" + service + "-source" }

// Sources decides, before anything is fetched or built, where each service
// to build takes its source from: exactly one of a directory, a git ref or
// (only by name, and only for ExampleEnvironments) an example. A service
// without a source, with two, a source for a service not being built, an
// unknown service, a malformed git spec or an example for another
// environment is refused with what to pass instead.
func Sources(a SourceArgs) (map[string]Source, error) {
	sel, err := catalog.Select(a.Services)
	if err != nil {
		return nil, err
	}
	building := map[string]catalog.Service{}
	for _, s := range sel {
		building[s.Name] = s
	}
	out := map[string]Source{}
	given := map[string]string{} // service -> the flag that gave its source
	add := func(svc, flag string, src Source) error {
		if _, err := catalog.Lookup(svc); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		if _, ok := building[svc]; !ok {
			return fmt.Errorf("%s: %s is not being built (--service %s); drop its source or add it to --service",
				flag, svc, strings.Join(a.Services, ","))
		}
		if prev, dup := given[svc]; dup {
			return fmt.Errorf("%s has two sources (%s and %s); give one", svc, prev, flag)
		}
		given[svc], out[svc] = flag, src
		return nil
	}
	for _, svc := range a.Directories {
		dir, _, _ := a.flags(svc)
		if err := add(svc, strings.TrimSuffix(dir, " DIR"), Source{Kind: FromDirectory}); err != nil {
			return nil, err
		}
	}
	for _, spec := range a.Git {
		svc, g, err := ParseServiceGit(spec)
		if err != nil {
			return nil, err
		}
		if err := add(svc, "--git "+spec, Source{Kind: FromGit, URL: g.URL, Ref: g.Ref}); err != nil {
			return nil, err
		}
	}
	for _, svc := range a.Examples {
		svc = strings.TrimSpace(svc)
		s, err := catalog.Lookup(svc)
		if err != nil {
			return nil, fmt.Errorf("--example: %w", err)
		}
		if !ExamplesAllowed(a.Env) {
			return nil, fmt.Errorf("--example %s: the examples are never built for %s (only for %s); give the service's own source",
				svc, a.Env, strings.Join(ExampleEnvironments, ", "))
		}
		_, _, flag := a.flags(svc)
		if err := add(svc, flag, Source{Kind: FromExample, Example: Examples[s.Kind]}); err != nil {
			return nil, err
		}
	}
	var missing []error
	for _, s := range sel {
		if _, ok := out[s.Name]; !ok {
			dir, git, example := a.flags(s.Name)
			hint := ""
			if ExamplesAllowed(a.Env) {
				hint = ", or " + example + " to build this repository's example"
			}
			missing = append(missing, fmt.Errorf("%s has no source: give its checkout (%s) or a git ref (%s)%s", s.Name, dir, git, hint))
		}
	}
	if len(missing) > 0 {
		return nil, errors.Join(missing...)
	}
	return out, nil
}

// Git is a remote and the ref to build.
type Git struct{ URL, Ref string }

// gitRef is what the engine can check out: a branch, tag or commit name,
// no option-looking or path-escaping spellings.
var gitRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// scpLike is git's user@host:path form of an SSH remote.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$`)

// ParseServiceGit reads service=URL#REF.
func ParseServiceGit(spec string) (string, Git, error) {
	svc, rest, ok := strings.Cut(spec, "=")
	svc = strings.TrimSpace(svc)
	if !ok || svc == "" {
		return "", Git{}, fmt.Errorf("--git %q: want service=URL#REF, e.g. auth-server=https://github.com/krgeobuk/auth-server#main", redactURL(spec))
	}
	if _, err := catalog.Lookup(svc); err != nil {
		return "", Git{}, fmt.Errorf("--git %s=…: %w", svc, err)
	}
	g, err := ParseGit(rest)
	if err != nil {
		return "", Git{}, fmt.Errorf("--git %s=…: %w", svc, err)
	}
	return svc, g, nil
}

// ParseGit reads URL#REF: an https:// or ssh:// remote (or git's
// user@host:path) and a branch, tag or commit. Credentials inside the URL are
// refused, without repeating them: they would end up in logs and image
// labels; a token goes in as a secret (--git-token) instead.
func ParseGit(spec string) (Git, error) {
	spec = strings.TrimSpace(spec)
	i := strings.LastIndex(spec, "#")
	if i < 0 {
		return Git{}, fmt.Errorf("%q: want URL#REF (a branch, tag or commit after #)", redactURL(spec))
	}
	raw, ref := spec[:i], spec[i+1:]
	if !gitRef.MatchString(ref) || strings.Contains(ref, "..") || strings.HasSuffix(ref, ".lock") || strings.HasSuffix(ref, "/") {
		return Git{}, fmt.Errorf("%q: ref %q is not a branch, tag or commit name", redactURL(raw), ref)
	}
	if scpLike.MatchString(raw) {
		return Git{URL: raw, Ref: ref}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Git{}, fmt.Errorf("%q: not a remote URL (want https://host/owner/repo, ssh://git@host/owner/repo or git@host:owner/repo; a local checkout is a directory)", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
		if u.User != nil {
			return Git{}, fmt.Errorf("%q: credentials in a git URL would be logged; give the token as a secret with --git-token", redactURL(raw))
		}
	case "ssh":
		if _, hasPassword := u.User.Password(); hasPassword {
			return Git{}, fmt.Errorf("%q: a password in a git URL would be logged; use an SSH key or --git-token over https", redactURL(raw))
		}
	default:
		return Git{}, fmt.Errorf("%q: scheme %q is not allowed (want https or ssh)", redactURL(raw), u.Scheme)
	}
	if u.RawQuery != "" || strings.Trim(u.Path, "/") == "" {
		return Git{}, fmt.Errorf("%q: want the repository's path and no query", redactURL(raw))
	}
	return Git{URL: raw, Ref: ref}, nil
}

// redactURL hides the user information of anything that parses as a URL, so
// a refusal never repeats a token.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		return scheme + "://[REDACTED]@" + rest[at+1:]
	}
	return s
}

// Labels returns the labels of an image built from s: an example names this
// repository and the example; a git source its https remote and the commit
// the engine resolved (commit); a directory the labels the caller gave.
func (s Source) Labels(given Labels, commit string) Labels {
	out := given
	switch s.Kind {
	case FromExample:
		out.Source, out.Example = DefaultSource, s.Example
	case FromGit:
		out.Source, out.Revision = "", commit
		if strings.HasPrefix(s.URL, "https://") {
			out.Source = strings.TrimSuffix(s.URL, ".git")
		}
	}
	return out
}
