package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"k8s.io/klog/v2"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/request"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

const usage = `usage: krgeobuk <command> [flags]

commands:
  deploy    preflight, upgrade --install, gate, verify or roll back
  rollback  return to the last verified revision (or --revision N)
  status    the current revision, its workloads and the deploy lock
  history   every revision with its images, verified mark, time and author
  promote   copy the images verified in one environment to another's repositories and deploy them there

deploy, rollback, status and history act on the apps (the four services) or,
with --stack monitoring, on the monitoring stack (Prometheus, Alertmanager,
Grafana): each is its own release with its own history and lock.

Run "krgeobuk <command> -h" for the command's flags.
`

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// list is a repeatable flag; its values are checked by package request, so
// both doors refuse a bad one with the same words.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// secretRef is a flag naming a secret as env:NAME or file:PATH.
type secretRef struct{ src request.Source }

func (s *secretRef) String() string { return "" }
func (s *secretRef) Set(v string) error {
	src, err := request.FromRef(v)
	s.src = src
	return err
}

type options struct {
	op                   request.Op
	promotion            request.Promotion
	kubeconfig, envDir   string
	toKubeconfig         string
	registryCA           string
	signedBy             string
	values               string
	jsonOut, markdownOut string
	password, srcPass    secretRef
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd := args[0]
	switch cmd {
	case request.Deploy, request.Rollback, request.Status, request.History, request.PromoteCommand:
	default:
		fmt.Fprintf(stderr, "krgeobuk: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	o := options{op: request.Op{Command: cmd}}
	fl := flag.NewFlagSet("krgeobuk "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	if cmd == request.PromoteCommand {
		defineRemote(fl, &o)
	} else {
		define(fl, &o)
	}
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "krgeobuk %s: unexpected arguments %v\n", cmd, fl.Args())
		return exitUsage
	}
	if !o.op.Verbose {
		// client-go reports every dropped watch (an API server restart) on
		// stderr; the gates already retry, so it is noise here.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	if cmd == request.PromoteCommand {
		return promoteRun(ctx, o, stdout, stderr)
	}
	if o.op.Env == "" {
		fmt.Fprintf(stderr, "krgeobuk %s: --env is required\n", cmd)
		return exitUsage
	}
	o.op.Log = stderr
	o.op.Kubeconfig = fileSource(o.kubeconfig)
	o.op.Values = fileSource(o.values)
	o.op.Registry.Password = o.password.src
	o.op.RegistryCA = fileSource(o.registryCA)
	o.op.SignedBy = fileSource(o.signedBy)
	if o.envDir != "" {
		o.op.Environments = os.DirFS(o.envDir)
	}
	return write(request.Run(ctx, o.op), o, stdout, stderr)
}

// define declares the flags of deploy, rollback, status and history.
func define(fl *flag.FlagSet, o *options) {
	cmd := o.op.Command
	fl.StringVar(&o.op.Env, "env", "", "environment name (required): a folder under environments/")
	fl.StringVar(&o.op.Stack, request.FlagStack, stack.Apps, "what to act on: "+strings.Join(stack.Names(), " or ")+
		" (apps: the four services; monitoring: Prometheus, Alertmanager and Grafana)")
	fl.StringVar(&o.envDir, "environments", "", "directory holding environments/<env>/ (default: the ones built into this binary)")
	fl.StringVar(&o.kubeconfig, request.FlagKubeconfig, os.Getenv("KUBECONFIG"), "kubeconfig file (default $KUBECONFIG); its current context is used")
	fl.StringVar(&o.op.Actor, "actor", "", "who runs this, recorded on revisions (default $USER@host)")
	fl.StringVar(&o.op.Format, request.FlagFormat, request.Formats[0], "report format on stdout: "+strings.Join(request.Formats, ", "))
	fl.StringVar(&o.jsonOut, "json", "", "also write the JSON result to this file")
	fl.StringVar(&o.markdownOut, "markdown", "", "also write the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
	fl.BoolVar(&o.op.Verbose, "verbose", false, "log Helm's and client-go's own messages too")
	if cmd == request.Deploy {
		fl.Var((*list)(&o.op.Images), request.FlagImage, "service=image reference, by digest or tag; repeat for every enabled service "+
			"(monitoring: component=reference for the components to run other images than the chart names)")
		fl.Var((*list)(&o.op.Services), request.FlagService, "deploy only this service (repeatable), with its --image; the others keep the digests "+
			"of the current verified revision (refused when there is none)")
		fl.StringVar(&o.values, request.FlagValues, "", "YAML file of values laid over the environment's")
		fl.StringVar(&o.op.PrometheusURL, request.FlagPrometheusURL, "", "Prometheus the analysis gate asks, http(s)://host:port without credentials "+
			"(default: the environment's monitoring release, through a port-forward)")
		fl.StringVar(&o.op.Registry.Username, request.FlagUsername, "", "registry user name for image lookups at preflight (default: docker's credentials)")
		fl.Var(&o.password, request.FlagPassword, "registry password or token, as env:NAME or file:PATH")
		fl.StringVar(&o.registryCA, request.FlagRegistryCA, "", registryCAUsage)
		fl.StringVar(&o.signedBy, request.FlagSignedBy, "", "PEM public key every image must be signed with (cosign format, with an SBOM), "+
			"for an environment whose environment.yaml requires no signatures")
	}
	if cmd == request.Deploy || cmd == request.Rollback {
		fl.Var((*list)(&o.op.ReadinessURLs), request.FlagReadinessURL, "service=URL to ask instead of a port-forward to its ready pods; repeatable")
		fl.BoolVar(&o.op.TakeOverLock, request.FlagTakeOverLock, false, "take the deploy lock even from a holder that looks alive (only when its deploy is known to be gone)")
	}
	if cmd == request.Rollback {
		fl.IntVar(&o.op.Revision, request.FlagRevision, 0, "revision to return to (default: the newest verified revision before the current one)")
		fl.BoolVar(&o.op.Force, request.FlagForce, false, "allow a revision that was never verified")
	}
}

const registryCAUsage = "PEM file of the CA(s) that signed the registry's TLS certificate, trusted besides the system's"

// defineRemote declares promote's flags, named as the Dagger module's.
func defineRemote(fl *flag.FlagSet, o *options) {
	p := &o.promotion
	fl.StringVar(&p.From, request.FlagFrom, "", "environment the images were verified in, e.g. staging")
	fl.StringVar(&p.To, request.FlagTo, "", "environment to promote to and deploy in, e.g. production")
	fl.StringVar(&o.envDir, "environments", "", "directory holding environments/<env>/ (default: the ones built into this binary)")
	fl.Var((*list)(&p.Images), request.FlagImage, "service=repository@sha256:... to promote only these (each must be the digest --from's current verified revision runs); "+
		"default: every service that revision runs")
	fl.StringVar(&o.kubeconfig, request.FlagKubeconfig, os.Getenv("KUBECONFIG"), "kubeconfig file to read --from's release history (default $KUBECONFIG)")
	fl.StringVar(&o.toKubeconfig, request.FlagToKubeconfig, "", "kubeconfig file of --to's deployer, to deploy the promoted images (required unless --copy-only)")
	fl.BoolVar(&p.CopyOnly, request.FlagCopyOnly, false, "copy the images to --to's repositories without deploying them")
	fl.StringVar(&p.ToRegistry, request.FlagToRegistry, "", "registry to copy to, as <registry>/<service> (default: the repositories --to deploys from)")
	fl.StringVar(&p.Dest.Username, request.FlagUsername, "", "destination registry user name")
	fl.Var(&o.password, request.FlagPassword, "destination registry password or token, as env:NAME or file:PATH")
	fl.StringVar(&p.Source.Username, request.FlagSourceUsername, "", "source registry user name")
	fl.Var(&o.srcPass, request.FlagSourcePassword, "source registry password or token, as env:NAME or file:PATH")
	fl.StringVar(&o.registryCA, request.FlagRegistryCA, "", registryCAUsage+"; one bundle for both registries")
	fl.Var((*list)(&p.ReadinessURLs), request.FlagReadinessURL, "deploy: service=URL to ask instead of the API server's service proxy; repeatable")
	fl.StringVar(&p.PrometheusURL, request.FlagPrometheusURL, "", "deploy: Prometheus the analysis gate asks, http(s)://host:port without credentials "+
		"(default: --to's monitoring release, through a port-forward)")
	fl.StringVar(&p.Format, request.FlagFormat, request.Formats[0], "the deploy's report format on stdout: "+strings.Join(request.Formats, ", "))
	fl.StringVar(&p.Actor, "actor", "", "who runs this, recorded on the deployed revision (default $USER@host)")
	fl.StringVar(&o.markdownOut, "markdown", "", "also write the deploy's Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
	fl.BoolVar(&p.Verbose, "verbose", false, "log Helm's and client-go's own messages too")
}

// promoteRun prints the copies, then the deploy's report; the exit code
// follows the deploy's verdict.
func promoteRun(ctx context.Context, o options, stdout, stderr io.Writer) int {
	p := o.promotion
	p.Kubeconfig, p.ToKubeconfig = fileSource(o.kubeconfig), fileSource(o.toKubeconfig)
	p.Dest.Password, p.Source.Password = o.password.src, o.srcPass.src
	p.RegistryCA = fileSource(o.registryCA)
	p.Log = stderr
	if o.envDir != "" {
		p.Environments = os.DirFS(o.envDir)
	}
	res, err := request.Promote(ctx, p)
	for _, l := range res.Head() {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		fmt.Fprintf(stderr, "krgeobuk: %v\n", err)
		return exitFailed
	}
	if res.Deploy == nil {
		return exitOK
	}
	fmt.Fprintln(stdout)
	return write(res.Deploy, o, stdout, stderr)
}

// fileSource reads path when the request needs it; "" is no file.
func fileSource(path string) request.Source {
	if path == "" {
		return nil
	}
	return func(context.Context) ([]byte, error) { return os.ReadFile(path) }
}

// write prints the report and writes the requested files; the exit code
// follows the verdict.
func write(out *request.Outcome, o options, stdout, stderr io.Writer) int {
	if err := out.Render(stdout, out.Format); err != nil {
		fmt.Fprintf(stderr, "krgeobuk: %v\n", err)
		return exitFailed
	}
	files := map[string]string{}
	if o.jsonOut != "" {
		files[o.jsonOut] = "json"
	}
	if o.markdownOut != "" {
		files[o.markdownOut] = "markdown"
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if files[p] == "markdown" {
			// CI step summaries are appended to, never replaced.
			mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(p, mode, 0o644)
		if err == nil {
			err = out.Render(f, files[p])
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "krgeobuk: write %s: %v\n", p, err)
			return exitFailed
		}
	}
	if !out.OK() {
		return exitFailed
	}
	return exitOK
}
