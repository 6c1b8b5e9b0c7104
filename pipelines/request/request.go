// Package request is what both front doors of the pipeline (the Dagger
// module in ci/ and the krgeobuk CLI) share: they turn their arguments into
// an Op and call Run, so parsing, checking, refusing and rendering happen in
// one place and say the same thing on both doors. A bad argument becomes a
// refused report before any secret or file is read.
package request

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// Commands an Op runs on an environment's release.
const (
	Deploy   = "deploy"
	Rollback = "rollback"
	Status   = "status"
	History  = "history"
)

// Op is one operation on a release of an environment, as a door received it:
// raw arguments, and Sources for what must be read (secrets, files), which
// Run reads only once every argument has passed.
type Op struct {
	// Command is Deploy, Rollback, Status or History.
	Command string
	// Env names a folder under environments/.
	Env string
	// Stack is what the operation acts on: stack.Apps ("" too) or
	// stack.Monitoring, each its own release.
	Stack string
	// Environments holds environments/<env>/; nil means the ones built in.
	Environments fs.FS
	// Format is one of Formats; "" means the first.
	Format string
	// Kubeconfig is the deployer's kubeconfig; nil is refused.
	Kubeconfig Source
	// KubeAPI, when set, yields host:port of a tunnel to the API server
	// (see kube.ThroughEndpoint).
	KubeAPI func(ctx context.Context) (string, error)
	// Registry is the login for image lookups at preflight.
	Registry Credentials
	// RegistryCA is a PEM bundle of CAs trusted beyond the system's for
	// those lookups (--registry-ca); nil adds none.
	RegistryCA Source

	// Images are deploy's service=reference pairs (component=reference for
	// the monitoring stack).
	Images []string
	// Services, when set, makes a deploy of the apps partial (--service,
	// repeatable): only these services change, Images (or the build) give
	// theirs only, and every other enabled service keeps the digest the
	// current verified revision runs (see deploy.Request.Services).
	Services []string
	// Values is deploy's values file; nil means none.
	Values Source
	// Build makes deploy's images when none are given; nil where the door
	// cannot build.
	Build *Build

	// Revision is rollback's target; 0 means the newest verified one.
	Revision int
	// Force lets rollback return to a revision never verified.
	Force bool
	// TakeOverLock lets deploy and rollback take the deploy lock from a
	// holder that still looks alive, when its deploy is known to be gone.
	TakeOverLock bool

	// ReadinessURLs are service=URL pairs sending readiness checks to fixed
	// URLs instead of a port-forward to the services' ready pods.
	ReadinessURLs []string
	// PrometheusURL is the Prometheus deploy's analysis gate asks; "" means
	// the environment's monitoring release, through a port-forward.
	PrometheusURL string
	// SignedBy is a PEM public key every image deployed must be signed with
	// (with an SBOM), in an environment whose environment.yaml requires no
	// signatures; nil adds nothing. It never changes an environment's own keys.
	SignedBy Source
	// Actor is recorded on revisions; "" means $USER@host.
	Actor string
	// Log receives progress lines, redacted; nil discards them.
	Log     io.Writer
	Verbose bool
}

// Build is how a door that can build images (the Dagger module) publishes
// them when a deploy names no --image.
type Build struct {
	Registry, Tag string
	// Sources say where each service's source comes from (build.Sources
	// decides, with the deploy's environment, before anything is read or
	// built); Env and Services are taken from the Op.
	Sources build.SourceArgs
	// Publish builds and publishes, returning service -> repository@digest;
	// its errors say that publishing failed.
	Publish func(ctx context.Context) (map[string]string, error)
	// Signed says a signing key was given: Publish signs what it pushes.
	// An environment that requires signatures refuses a build without one.
	Signed bool
}

// givesSources says whether any source argument was given.
func (b *Build) givesSources() bool {
	s := b.Sources
	return len(s.Directories) > 0 || len(s.Git) > 0 || len(s.Examples) > 0
}

// Outcome is a run's report and the redactor every rendering of it must
// pass through.
type Outcome struct {
	Result   *report.Result
	Redactor *report.Redactor
	// Format is the checked format of the request.
	Format string
}

// OK says whether the run reached a verdict a caller counts as success.
func (o *Outcome) OK() bool { return o.Result.OK }

// Render writes the report in format (one of Formats), redacted.
func (o *Outcome) Render(w io.Writer, format string) error {
	return Render(w, format, o.Result, o.Redactor)
}

// Text is the report in the request's format. A run that is not OK is an
// error carrying the report, so a Dagger call fails and still shows why.
func (o *Outcome) Text() (string, error) {
	var buf bytes.Buffer
	if err := o.Render(&buf, o.Format); err != nil {
		return "", fmt.Errorf("render the report: %w", err)
	}
	if !o.OK() {
		return "", fmt.Errorf("%s %s: %s\n%s", o.Result.Command, o.Result.Environment, o.Result.Verdict, buf.String())
	}
	return buf.String(), nil
}

// Run checks op, reads its sources, runs it and returns the report. It never
// returns without one: bad input is a refused report naming the argument.
func Run(ctx context.Context, op Op) *Outcome {
	out := &Outcome{Redactor: &report.Redactor{}, Format: op.Format}
	if out.Format == "" {
		out.Format = Formats[0]
	}
	var st *stack.Stack
	refuse := func(env *environment.Environment, err error) *Outcome {
		out.Result = Refused(op.Command, env, err, out.Redactor)
		if st != nil {
			out.Result.Stack, out.Result.Namespace, out.Result.Release = st.Name, st.Namespace, st.Release
		}
		return out
	}
	env, err := loadEnv(op.Environments, op.Env)
	if err != nil {
		refuse(nil, err).Result.Environment = op.Env // the name given, for the headline
		return out
	}
	if err := CheckFormat(out.Format); err != nil {
		out.Format = Formats[0]
		return refuse(env, err)
	}
	if op.SignedBy != nil {
		if env, err = requireSignedBy(ctx, env, op.SignedBy); err != nil {
			return refuse(env, err)
		}
	}
	images, readiness, err := op.check()
	if err != nil {
		return refuse(env, err)
	}
	s, err := stack.For(env, op.Stack)
	if err != nil {
		return refuse(env, fmt.Errorf("--stack %s: %w", op.Stack, err))
	}
	st = &s
	if op.Command == Deploy && len(images) == 0 && !st.ChartImages && op.Build != nil {
		if err := attest.CheckPublish(env, op.Build.Signed); err != nil {
			return refuse(env, err)
		}
	}

	var values map[string]any
	if op.Values != nil {
		data, err := op.Values(ctx)
		if err != nil {
			return refuse(env, fmt.Errorf("--values: %w", err))
		}
		if values, err = Values(data); err != nil {
			return refuse(env, err)
		}
	}
	if op.Command == Deploy && len(images) == 0 && !st.ChartImages {
		if images, err = op.Build.Publish(ctx); err != nil {
			return refuse(env, err)
		}
	}
	creds := op.Registry
	creds.CA = op.RegistryCA
	d, err := connect(ctx, env, op.Kubeconfig, op.KubeAPI, creds, out.Redactor, func(c *deploy.Config) {
		c.Stack, c.Actor, c.Log, c.Verbose, c.ReadinessURLs = st.Name, op.Actor, op.Log, op.Verbose, readiness
		c.PrometheusURL = op.PrometheusURL
	})
	if err != nil {
		return refuse(env, err)
	}
	out.Redactor = d.Redactor()
	switch op.Command {
	case Deploy:
		out.Result = d.Deploy(ctx, deploy.Request{Images: images, Values: values, TakeOverLock: op.TakeOverLock, Services: op.Services})
	case Rollback:
		out.Result = d.Rollback(ctx, deploy.RollbackRequest{Revision: op.Revision, Force: op.Force, TakeOverLock: op.TakeOverLock})
	case Status:
		out.Result = d.Status(ctx)
	case History:
		out.Result = d.History(ctx)
	}
	return out
}

// CheckPrometheusURL refuses a --prometheus-url that is not a plain
// http(s) URL with a host, or that carries credentials: secrets never
// arrive as plain flags. An empty URL is fine (the monitoring release's).
// The URL is never echoed, in case it holds a secret after all.
func CheckPrometheusURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("--%s: want http://host:port or https://host:port", FlagPrometheusURL)
	case u.User != nil:
		return fmt.Errorf("--%s: credentials do not belong in a flag; give Prometheus's address without them", FlagPrometheusURL)
	}
	return nil
}

// check checks every argument that needs nothing read, in the order a
// person reads the command line.
func (op Op) check() (images, readiness map[string]string, err error) {
	switch op.Command {
	case Deploy, Rollback, Status, History:
	default:
		return nil, nil, fmt.Errorf("unknown command %q", op.Command)
	}
	if op.Stack != "" && !slices.Contains(stack.Names(), op.Stack) {
		return nil, nil, fmt.Errorf("--stack %q: want one of %s", op.Stack, strings.Join(stack.Names(), ", "))
	}
	if op.Command == Deploy {
		if images, err = Images(op.Images); err != nil {
			return nil, nil, err
		}
		if err := op.checkBuild(len(images) > 0); err != nil {
			return nil, nil, err
		}
		if err := op.checkServices(images); err != nil {
			return nil, nil, err
		}
	}
	if readiness, err = Pairs("--"+FlagReadinessURL, "URL", op.ReadinessURLs); err != nil {
		return nil, nil, err
	}
	if err := CheckPrometheusURL(op.PrometheusURL); err != nil {
		return nil, nil, err
	}
	if op.Command == Rollback && op.Revision < 0 {
		return nil, nil, fmt.Errorf("--revision %d: revisions start at 1", op.Revision)
	}
	if err := op.Registry.Check(); err != nil {
		return nil, nil, err
	}
	if op.Kubeconfig == nil {
		return nil, nil, errNoKubeconfig
	}
	return images, readiness, nil
}

// checkBuild: a deploy of the apps either names its images or, where the
// door can, builds them; never both, never neither. The monitoring stack
// builds nothing: it runs the images its chart names, or those named.
func (op Op) checkBuild(haveImages bool) error {
	b := op.Build
	building := b != nil && (b.Registry != "" || b.Tag != "" || b.givesSources())
	if op.Stack == stack.Monitoring {
		if building || len(op.Services) > 0 {
			return errors.New("--registry, --tag, --service and the services' sources build, publish and deploy the apps' images; the monitoring stack runs the images its chart names (give --image component=reference to run another)")
		}
		return nil
	}
	switch {
	case haveImages && building:
		return errors.New("--image deploys given images; --registry, --tag and the services' sources are for building them, not both")
	case haveImages:
		return nil
	case b == nil:
		return errors.New("nothing to deploy: give --image service=repository@sha256:... for the services to deploy")
	case b.Registry == "" || b.Tag == "":
		return fmt.Errorf("nothing to deploy: give --image service=repository@sha256:..., or build and publish first: --registry and --tag with each service's source (%s DIR or --git service=URL#REF)",
			build.DirectoryFlag("<service>"))
	}
	if _, err := build.Targets(b.Registry, b.Tag, op.Services); err != nil {
		return err
	}
	args := b.Sources
	args.Env, args.Services = op.Env, op.Services
	if _, err := build.Sources(args); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	return nil
}

// checkServices checks a partial deploy's --service names: known, each
// once, and, with --image, exactly the services the images are for.
func (op Op) checkServices(images map[string]string) error {
	named := map[string]bool{}
	for _, s := range op.Services {
		if _, err := catalog.Lookup(s); err != nil {
			return fmt.Errorf("--service %s: %w", s, err)
		}
		if named[s] {
			return fmt.Errorf("--service: %s given twice", s)
		}
		named[s] = true
		if len(images) > 0 && images[s] == "" {
			return fmt.Errorf("--service %s: no --image given for it (a partial deploy takes an image for each service named)", s)
		}
	}
	if len(op.Services) > 0 {
		for _, s := range slices.Sorted(maps.Keys(images)) {
			if !named[s] {
				return fmt.Errorf("--image %s: not among the --service deployed (%s); a partial deploy takes images for those only", s, strings.Join(op.Services, ", "))
			}
		}
	}
	return nil
}

// requireSignedBy is env requiring every image to be signed with the key in
// src. An environment that requires signatures keeps its own keys: a flag
// may add a check where there was none, never swap the keys a team chose.
func requireSignedBy(ctx context.Context, env *environment.Environment, src Source) (*environment.Environment, error) {
	if env.Signing != nil && env.Signing.Required {
		var files []string
		for _, k := range env.Signing.Keys {
			files = append(files, k.File)
		}
		return env, fmt.Errorf("--%s: environment %s accepts only the keys its %s names (%s); change them there",
			FlagSignedBy, env.Name, environment.SettingsFile, strings.Join(files, ", "))
	}
	data, err := src(ctx)
	if err != nil {
		return env, fmt.Errorf("--%s: %w", FlagSignedBy, err)
	}
	key, err := environment.ParsePublicKey("--"+FlagSignedBy, data)
	if err != nil {
		return env, err
	}
	signed := *env
	signed.Signing = &environment.Signing{Required: true, Keys: []environment.PublicKey{key}}
	return &signed, nil
}

var errNoKubeconfig = errors.New("no kubeconfig: --kubeconfig is required (the deployer account's kubeconfig)")

func loadEnv(fsys fs.FS, name string) (*environment.Environment, error) {
	if fsys == nil {
		fsys = k8s.Environments
	}
	return environment.Load(fsys, name)
}

// connect reads the kubeconfig (through the tunnel when given) and the
// registry login, and prepares a deployer. red learns every secret read, so
// a refusal after this point is redacted too.
func connect(ctx context.Context, env *environment.Environment, kubeconfig Source, kubeAPI func(context.Context) (string, error),
	creds Credentials, red *report.Redactor, configure func(*deploy.Config)) (*deploy.Deployer, error) {
	if kubeconfig == nil {
		return nil, errNoKubeconfig
	}
	data, err := kubeconfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	red.Add(report.SecretsFromKubeconfig(data)...)
	if kubeAPI != nil {
		endpoint, err := kubeAPI(ctx)
		if err != nil {
			return nil, fmt.Errorf("kube-api: %w", err)
		}
		if data, err = kube.ThroughEndpoint(data, endpoint); err != nil {
			return nil, err
		}
	}
	opts, password, err := creds.Options(ctx)
	if err != nil {
		return nil, err
	}
	red.Add(password)
	cfg := deploy.Config{Kubeconfig: data, Env: env, Registry: &registry.Resolver{Options: opts, Access: creds.Access()}}
	if configure != nil {
		configure(&cfg)
	}
	d, err := deploy.New(cfg)
	if err != nil {
		return nil, err
	}
	d.Redactor().Add(password)
	return d, nil
}
