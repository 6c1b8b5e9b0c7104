package main

import (
	"context"
	"fmt"
	"strings"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/request"
)

// Deploy to an environment through the gated flow: preflight (images resolve
// by digest, API server, values schema, policy rules, server-side dry run,
// deploy lock), one Helm upgrade of the release with images pinned by
// digest, the rollout gate (Deployments and StatefulSets) and the readiness
// gate, then a verdict. A failed deploy is rolled back to the newest verified
// revision. Returns the report; a deploy that is not verified fails the call
// (non-zero exit) with the report.
//
// --stack apps (the default) deploys the four services. Without --image they
// are first built from the sources given (each service's
// --<service>-source checkout or --git service=URL#REF; the examples only by
// name with --example, and never for staging or production), published to
// --registry under --tag, and the published digests are deployed. Without
// images and without sources the call is refused, saying what to pass,
// before anything runs.
//
// --stack monitoring deploys Prometheus, Alertmanager and Grafana, a release of
// its own in the monitoring namespace. Nothing is built: it runs the exact
// versions the chart names, pinned to the digests their registries serve,
// unless --image component=reference names another.
func (m *Krgeobuk) Deploy(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig or
	// env:KUBECONFIG_DATA.
	kubeconfig *dagger.Secret,
	// What to deploy: apps (auth-server, authz-server, auth-client,
	// portal-client) or monitoring (Prometheus, Alertmanager, Grafana).
	// +default="apps"
	stack string,
	// Images to deploy, as service=repository@sha256:... (a tag is pinned to
	// its digest at preflight). Apps: when none is given, the services are
	// built and published first. Monitoring: component=reference replaces
	// the image the chart names for that component.
	// +optional
	image []string,
	// Registry to publish the apps to when no --image is given, e.g.
	// ghcr.io/krgeobuk.
	// +optional
	registry string,
	// Tag to publish under when no --image is given (e.g. the commit id).
	// +optional
	tag string,
	// Deploy only these apps services (repeatable): each is built and
	// published (or given with --image), and every other enabled service
	// keeps the digest the current verified revision runs. Refused when there
	// is no verified revision, or another service would change. Default: all.
	// +optional
	service []string,
	// auth-server's checkout to build when no --image is given.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authServerSource *dagger.Directory,
	// authz-server's checkout to build when no --image is given.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authzServerSource *dagger.Directory,
	// auth-client's checkout to build when no --image is given.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authClientSource *dagger.Directory,
	// portal-client's checkout to build when no --image is given.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	portalClientSource *dagger.Directory,
	// Services to build from a git remote and ref the engine fetches, as
	// service=URL#REF, e.g.
	// auth-server=https://github.com/krgeobuk/auth-server#main.
	// +optional
	git []string,
	// Token for https --git remotes that need one, e.g. env:GIT_TOKEN.
	// +optional
	gitToken *dagger.Secret,
	// Services to build from this repository's examples: only with --env
	// development; refused for staging and production.
	// +optional
	example []string,
	// Registry user name (publish, and image lookups at preflight).
	// +optional
	username string,
	// Registry password or token, e.g. env:GHCR_TOKEN.
	// +optional
	password *dagger.Secret,
	// PEM file of the CA(s) that signed the registry's TLS certificate,
	// trusted besides the system's for the image lookups at preflight (the
	// publish itself trusts what the engine is configured to trust).
	// +optional
	registryCa *dagger.File,
	// PEM public key every image must be signed with (a cosign signature
	// and an SBOM attached to its digest), checked at preflight, for an
	// environment whose environment.yaml requires no signatures; staging
	// and production accept only the keys their environment.yaml names.
	// +optional
	signedBy *dagger.File,
	// Reach the Kubernetes API server through this service instead of the
	// kubeconfig's address, e.g. tcp://localhost:6443 for a cluster running on
	// the engine's host. TLS still checks the kubeconfig's host name.
	// +optional
	kubeAPI *dagger.Service,
	// YAML file of chart values laid over the environment's (checked against
	// the chart's schema before anything changes), e.g. a replica count.
	// +optional
	values *dagger.File,
	// Take the deploy lock even from a holder that looks alive: only when
	// its deploy is known to be gone (a refusal names the holder).
	// +optional
	takeOverLock bool,
	// Ask a service's readiness at this URL instead of through a
	// port-forward to its ready pods, as service=URL (repeatable), e.g.
	// auth-server=https://auth.krgeobuk.com/api/health/ready.
	// +optional
	readinessUrl []string,
	// Prometheus the metric analysis gate asks (environments with an
	// analysis: block), as http(s)://host:port without credentials, e.g.
	// http://prometheus.example:9090. Default: the environment's monitoring
	// release's Prometheus, through a port-forward.
	// +optional
	prometheusUrl string,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
	// Private key that signs the images published when no --image is given
	// (see publish --signing-key), e.g. env:COSIGN_KEY; required to build
	// for an environment that requires signatures.
	// +optional
	signingKey *dagger.Secret,
	// Password of an encrypted cosign key file, e.g. env:COSIGN_PASSWORD.
	// +optional
	signingKeyPassword *dagger.Secret,
) (string, error) {
	sources := sourceArgs{
		dirs: serviceDirectories(authServerSource, authzServerSource, authClientSource, portalClientSource),
		git:  git, gitToken: gitToken, examples: example,
	}
	return request.Run(ctx, request.Op{
		Command: request.Deploy, Env: env, Stack: stack, Format: format, Images: image, Services: service, Values: fileSource(values), TakeOverLock: takeOverLock,
		Kubeconfig: secretSource(kubeconfig), KubeAPI: tunnel(kubeAPI), ReadinessURLs: readinessUrl, PrometheusURL: prometheusUrl,
		Registry: request.Credentials{Username: username, Password: secretSource(password)}, RegistryCA: fileSource(registryCa),
		SignedBy: fileSource(signedBy),
		Build: &request.Build{Registry: registry, Tag: tag, Sources: sources.decide(), Signed: signingKey != nil, Publish: m.publishing(publishArgs{
			registry: registry, tag: tag, services: service, sources: sources, username: username, password: password, registryCa: registryCa, env: env,
			signingKey: signingKey, signingKeyPassword: signingKeyPassword,
		})},
	}).Text()
}

// Roll an environment's release back to a verified revision (the newest one
// older than the current, or --revision), gate the result like a deploy and
// report. Fails (non-zero exit) unless the rollback is verified.
func (m *Krgeobuk) Rollback(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Which release: apps or monitoring.
	// +default="apps"
	stack string,
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
	// Take the deploy lock even from a holder that looks alive: only when
	// its deploy is known to be gone (a refusal names the holder).
	// +optional
	takeOverLock bool,
	// Ask a service's readiness at this URL instead of through the API
	// server's service proxy, as service=URL (repeatable).
	// +optional
	readinessUrl []string,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	return request.Run(ctx, request.Op{Command: request.Rollback, ReadinessURLs: readinessUrl, Env: env, Stack: stack, Format: format, Revision: revision, Force: force, TakeOverLock: takeOverLock,
		Kubeconfig: secretSource(kubeconfig), KubeAPI: tunnel(kubeAPI)}).Text()
}

// Report an environment's release: current revision and whether it passed
// its gates, each service's (or monitoring component's) rollout and image,
// and the deploy lock.
func (m *Krgeobuk) Status(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Which release: apps or monitoring.
	// +default="apps"
	stack string,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	return request.Run(ctx, request.Op{Command: request.Status, Env: env, Stack: stack, Format: format,
		Kubeconfig: secretSource(kubeconfig), KubeAPI: tunnel(kubeAPI)}).Text()
}

// List every stored revision of an environment's release with its images,
// verified mark, time and author, oldest first.
func (m *Krgeobuk) History(
	ctx context.Context,
	// Environment: development, staging or production.
	env string,
	// kubeconfig of the deployer account, e.g. file:./kubeconfig.
	kubeconfig *dagger.Secret,
	// Which release: apps or monitoring.
	// +default="apps"
	stack string,
	// Reach the Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// Report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	return request.Run(ctx, request.Op{Command: request.History, Env: env, Stack: stack, Format: format,
		Kubeconfig: secretSource(kubeconfig), KubeAPI: tunnel(kubeAPI)}).Text()
}

// Promote the images of one environment's current verified revision (the
// newest verified revision, which must be the one running there: a failed
// deploy that was rolled back promotes the rollback; a current revision that
// never passed its gates is refused before anything is copied) to the
// repositories another deploys from, copying by digest (no rebuild) and
// reading each digest back, then deploy the promoted references (never the
// source ones) there through the gated flow. Returns one line per copy, then
// the deploy's report; fails (non-zero exit) unless the deploy is verified.
func (m *Krgeobuk) Promote(
	ctx context.Context,
	// Environment the images were verified in, e.g. staging.
	from string,
	// Environment to promote to and deploy in, e.g. production.
	to string,
	// Promote only these services, as service=repository@sha256:...: each
	// must be the digest --from's current verified revision runs (a partial
	// deploy in --to). Default: every service that revision runs.
	// +optional
	image []string,
	// kubeconfig to read --from's release history (required: what is
	// promoted must be what that revision runs).
	// +optional
	kubeconfig *dagger.Secret,
	// Reach --from's Kubernetes API server through this service, e.g.
	// tcp://localhost:6443.
	// +optional
	kubeAPI *dagger.Service,
	// kubeconfig of --to's deployer account, to deploy the promoted images
	// (required unless --copy-only).
	// +optional
	toKubeconfig *dagger.Secret,
	// Reach --to's Kubernetes API server through this service.
	// +optional
	toKubeAPI *dagger.Service,
	// Copy the images to --to's repositories without deploying them.
	// +optional
	copyOnly bool,
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
	// PEM file of the CA(s) that signed the registries' TLS certificates,
	// trusted besides the system's on both sides of the copy and at the
	// deploy's preflight: one bundle for both registries.
	// +optional
	registryCa *dagger.File,
	// The deploy's readiness checks: service=URL to ask instead of the API
	// server's service proxy (repeatable).
	// +optional
	readinessUrl []string,
	// The deploy's metric analysis: Prometheus to ask, as
	// http(s)://host:port without credentials. Default: --to's monitoring
	// release's Prometheus, through a port-forward.
	// +optional
	prometheusUrl string,
	// The deploy's report format: table, markdown or json.
	// +default="table"
	format string,
) (string, error) {
	res, err := request.Promote(ctx, request.Promotion{
		From: from, To: to, Images: image, Kubeconfig: secretSource(kubeconfig), KubeAPI: tunnel(kubeAPI), ToRegistry: toRegistry,
		ToKubeconfig: secretSource(toKubeconfig), ToKubeAPI: tunnel(toKubeAPI), CopyOnly: copyOnly,
		Dest:          request.Credentials{Username: username, Password: secretSource(password)},
		Source:        request.Credentials{Username: sourceUsername, Password: secretSource(sourcePassword)},
		RegistryCA:    fileSource(registryCa),
		ReadinessURLs: readinessUrl, PrometheusURL: prometheusUrl, Format: format,
	})
	if err != nil {
		head := strings.Join(res.Head(), "\n")
		if head != "" {
			return "", fmt.Errorf("%w\n%s", err, head)
		}
		return "", err
	}
	return res.Text()
}

// secretSource reads a secret's plaintext only when the request needs it,
// so a refused call sends no query.
func secretSource(s *dagger.Secret) request.Source {
	if s == nil {
		return nil
	}
	return func(ctx context.Context) ([]byte, error) {
		p, err := s.Plaintext(ctx)
		return []byte(p), err
	}
}

// fileSource reads a file's contents only when the request needs them.
func fileSource(f *dagger.File) request.Source {
	if f == nil {
		return nil
	}
	return func(ctx context.Context) ([]byte, error) {
		c, err := f.Contents(ctx)
		return []byte(c), err
	}
}

// tunnel starts the API server's tunnel and answers its host:port; the
// request rewrites the kubeconfig to reach the cluster through it.
func tunnel(s *dagger.Service) func(context.Context) (string, error) {
	if s == nil {
		return nil
	}
	return func(ctx context.Context) (string, error) {
		if _, err := s.Start(ctx); err != nil {
			return "", err
		}
		return s.Endpoint(ctx)
	}
}
