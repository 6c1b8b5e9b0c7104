package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/promote"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Deploy services to an environment through the gated flow: preflight
// (images resolve by digest, API server, values schema, server-side dry run,
// deploy lock), one Helm upgrade of the umbrella release with images pinned
// by digest, rollout and readiness gates, then a verdict. A failed deploy is
// rolled back to the newest verified revision. Returns the report; a deploy
// that is not verified fails the call (non-zero exit) with the report.
//
// Without --image, the services are first built and published to --registry
// under --tag, and the published digests are deployed.
func (m *Krgeobuk) Deploy(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig or
	// env:KUBECONFIG_DATA.
	kubeconfig *dagger.Secret,
	// Images to deploy, as service=repository@sha256:... (a tag is pinned to
	// its digest at preflight). When none is given, the services are built
	// and published first.
	// +optional
	image []string,
	// Registry to publish to when no --image is given, e.g. ghcr.io/krgeobuk.
	// +optional
	registry string,
	// Tag to publish under when no --image is given (e.g. the commit id).
	// +optional
	tag string,
	// Services to build and publish when no --image is given. Default: all.
	// +optional
	service []string,
	// Registry user name (publish, and image lookups at preflight).
	// +optional
	username string,
	// Registry password or token, e.g. env:GHCR_TOKEN.
	// +optional
	password *dagger.Secret,
	// Reach the Kubernetes API server through this service instead of the
	// kubeconfig's address, e.g. tcp://localhost:6443 for a cluster running on
	// the engine's host. TLS still checks the kubeconfig's host name.
	// +optional
	kubeAPI *dagger.Service,
	// YAML file of chart values laid over the environment's (checked against
	// the chart's schema before anything changes), e.g. a replica count.
	// +optional
	values *dagger.File,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	e, err := checkOp(env, kubeconfig, format, username, password)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	images, err := parseImages(image)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	extra, err := readValues(ctx, values)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	if len(images) == 0 && (registry == "" || tag == "") {
		return "", fmt.Errorf("deploy: give --image service=repository@digest, or --registry and --tag to build and publish first")
	}
	if len(images) > 0 && (registry != "" || len(service) > 0) {
		return "", fmt.Errorf("deploy: --image deploys given images; --registry and --service are for building them, not both")
	}
	if len(images) == 0 {
		refs, err := m.publish(ctx, publishArgs{registry: registry, tag: tag, services: service, username: username, password: password,
			env: env, sourceURL: defaultSourceURL})
		if err != nil {
			return "", fmt.Errorf("deploy: %w", err)
		}
		images = map[string]string{}
		for _, r := range refs {
			images[r.service] = r.ref
		}
	}
	d, err := deployer(ctx, e, kubeconfig, kubeAPI, username, password)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	return rendered(d, d.Deploy(ctx, deploy.Request{Images: images, Values: extra}), format)
}

// readValues reads --values; a file that is not a YAML mapping is refused
// here, before the cluster is contacted.
func readValues(ctx context.Context, f *dagger.File) (map[string]any, error) {
	if f == nil {
		return nil, nil
	}
	data, err := f.Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("--values: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal([]byte(data), &values); err != nil {
		return nil, fmt.Errorf("--values: not a YAML mapping of chart values: %w", err)
	}
	return values, nil
}

// Roll an environment back to a verified revision (the newest one older than
// the current, or --revision), gate the result like a deploy and report.
// Fails (non-zero exit) unless the rollback is verified.
func (m *Krgeobuk) Rollback(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Revision to return to. Default: the newest verified revision older than
	// the current one.
	// +optional
	revision int,
	// Allow returning to a revision that was never verified.
	// +optional
	force bool,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	if revision < 0 {
		return "", fmt.Errorf("rollback: --revision %d: revisions start at 1", revision)
	}
	return onRelease(ctx, "rollback", env, kubeconfig, kubeAPI, format, func(d *deploy.Deployer) *report.Result {
		return d.Rollback(ctx, deploy.RollbackRequest{Revision: revision, Force: force})
	})
}

// Report an environment's release: current revision and whether it passed
// its gates, each service's rollout and image, and the deploy lock.
func (m *Krgeobuk) Status(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	return onRelease(ctx, "status", env, kubeconfig, kubeAPI, format, func(d *deploy.Deployer) *report.Result {
		return d.Status(ctx)
	})
}

// List every stored revision of an environment's release with its images,
// verified mark, time and author, oldest first.
func (m *Krgeobuk) History(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	return onRelease(ctx, "history", env, kubeconfig, kubeAPI, format, func(d *deploy.Deployer) *report.Result {
		return d.History(ctx)
	})
}

// onRelease checks the arguments every operation on an environment's
// release shares, connects, runs op and renders its report.
func onRelease(ctx context.Context, op, env string, kubeconfig *dagger.Secret, kubeAPI *dagger.Service, format string,
	run func(*deploy.Deployer) *report.Result) (string, error) {
	e, err := checkOp(env, kubeconfig, format, "", nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	d, err := deployer(ctx, e, kubeconfig, kubeAPI, "", nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return rendered(d, run(d), format)
}

// Promote the images verified in one environment to the repositories another
// deploys from, copying by digest (no rebuild) and reading each digest back.
// Returns one line per service: service, source, destination and whether it
// was copied. Deploy the result with `deploy --image`.
func (m *Krgeobuk) Promote(
	ctx context.Context,
	// Environment the images were verified in, e.g. staging.
	from string,
	// Environment to promote to, e.g. production.
	to string,
	// Verified images as service=repository@sha256:... Default: the images of
	// the newest verified revision of --from's release (needs --kubeconfig).
	// +optional
	image []string,
	// kubeconfig to read --from's release history.
	// +optional
	kubeconfig *dagger.Secret,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Registry to copy to, as <registry>/<service>. Default: the repositories
	// --to's chart values deploy from.
	// +optional
	toRegistry string,
	// Destination registry user name.
	// +optional
	username string,
	// Destination registry password or token.
	// +optional
	password *dagger.Secret,
	// Source registry user name.
	// +optional
	sourceUsername string,
	// Source registry password or token.
	// +optional
	sourcePassword *dagger.Secret,
) ([]string, error) {
	if from == to {
		return nil, fmt.Errorf("promote: --from and --to are both %q", from)
	}
	fromEnv, err := environment.Load(k8s.Environments, from)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if _, err := environment.Load(k8s.Environments, to); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	verified, err := parseImages(image)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if len(verified) == 0 && kubeconfig == nil {
		return nil, fmt.Errorf("promote: give --image service=repository@digest, or --kubeconfig to read %s's verified revision", from)
	}
	if (username == "") != (password == nil) || (sourceUsername == "") != (sourcePassword == nil) {
		return nil, fmt.Errorf("promote: give a registry user name and its password together, or neither")
	}
	dest, err := promote.Destinations(to, toRegistry)
	if err != nil {
		return nil, err
	}
	if len(verified) > 0 {
		if _, err := promote.Plan(verified, dest); err != nil {
			return nil, err
		}
	}

	if len(verified) == 0 {
		d, err := deployer(ctx, fromEnv, kubeconfig, kubeAPI, "", nil)
		if err != nil {
			return nil, fmt.Errorf("promote: %w", err)
		}
		history, err := d.Release().History(ctx)
		if err != nil {
			return nil, fmt.Errorf("promote: %s: %w", from, err)
		}
		if verified, _, err = promote.Verified(history); err != nil {
			return nil, err
		}
	}
	plan, err := promote.Plan(verified, dest)
	if err != nil {
		return nil, err
	}
	opts := promote.Options{}
	if opts.Dest, err = registryAuth(ctx, username, password); err != nil {
		return nil, err
	}
	if opts.Source, err = registryAuth(ctx, sourceUsername, sourcePassword); err != nil {
		return nil, err
	}
	res, err := promote.Run(ctx, plan, opts)
	var out []string
	for _, r := range res {
		what := "copied"
		if !r.Copied {
			what = "already present"
		}
		out = append(out, fmt.Sprintf("%s %s -> %s (%s)", r.Service, r.From, r.To, what))
	}
	return out, err
}

const defaultSourceURL = "https://github.com/krgeobuk/krgeobuk-infra"

var formats = []string{"table", "markdown", "json"}

// checkOp checks what every cluster operation needs, before any call.
func checkOp(env string, kubeconfig *dagger.Secret, format, username string, password *dagger.Secret) (*environment.Environment, error) {
	e, err := environment.Load(k8s.Environments, env)
	if err != nil {
		return nil, err
	}
	if kubeconfig == nil {
		return nil, fmt.Errorf("--kubeconfig is required (a secret: file:./kubeconfig or env:NAME)")
	}
	ok := false
	for _, f := range formats {
		ok = ok || f == format
	}
	if !ok {
		return nil, fmt.Errorf("--format %q: want one of %s", format, strings.Join(formats, ", "))
	}
	if (username == "") != (password == nil) {
		return nil, fmt.Errorf("give both --username and --password, or neither")
	}
	return e, nil
}

// parseImages reads service=reference pairs; a service named twice is an
// error rather than a silent override.
func parseImages(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		svc, ref, ok := strings.Cut(p, "=")
		svc, ref = strings.TrimSpace(svc), strings.TrimSpace(ref)
		if !ok || svc == "" || ref == "" {
			return nil, fmt.Errorf("--image %q: want service=repository@sha256:...", p)
		}
		if _, dup := out[svc]; dup {
			return nil, fmt.Errorf("--image: service %s given twice", svc)
		}
		out[svc] = ref
	}
	return out, nil
}

func registryAuth(ctx context.Context, username string, password *dagger.Secret) ([]remote.Option, error) {
	if password == nil {
		return nil, nil
	}
	pw, err := password.Plaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry password: %w", err)
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: username, Password: pw})}, nil
}

// deployer reads the kubeconfig secret and prepares the deploy packages'
// client, through kubeAPI when given.
func deployer(ctx context.Context, e *environment.Environment, kubeconfig *dagger.Secret, kubeAPI *dagger.Service,
	username string, password *dagger.Secret) (*deploy.Deployer, error) {
	kc, err := kubeconfig.Plaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	data := []byte(kc)
	if kubeAPI != nil {
		if _, err := kubeAPI.Start(ctx); err != nil {
			return nil, fmt.Errorf("kube-api: %w", err)
		}
		endpoint, err := kubeAPI.Endpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("kube-api: %w", err)
		}
		if data, err = kube.ThroughEndpoint(data, endpoint); err != nil {
			return nil, err
		}
	}
	auth, err := registryAuth(ctx, username, password)
	if err != nil {
		return nil, err
	}
	return deploy.New(deploy.Config{Kubeconfig: data, Env: e, Registry: &registry.Resolver{Options: auth}})
}

// rendered formats the report (redacted by the deployer's redactor) and turns
// a result that is not OK into an error carrying the report.
func rendered(d *deploy.Deployer, res *report.Result, format string) (string, error) {
	var buf bytes.Buffer
	var err error
	switch format {
	case "json":
		err = report.JSON(&buf, res, d.Redactor())
	case "markdown":
		err = report.Markdown(&buf, res, d.Redactor())
	default:
		err = report.Table(&buf, res, d.Redactor())
	}
	if err != nil {
		return "", err
	}
	if !res.OK {
		return "", fmt.Errorf("%s %s: %s\n%s", res.Command, res.Environment, res.Verdict, buf.String())
	}
	return buf.String(), nil
}
