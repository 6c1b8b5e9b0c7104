package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

const usage = `usage: krgeobuk <command> [flags]

commands:
  deploy    preflight, upgrade --install, gate, verify or roll back
  rollback  return to the last verified revision (or --to N)
  status    the current revision, its workloads and the deploy lock
  history   every revision with its images, verified mark, time and author

Run "krgeobuk <command> -h" for the command's flags.
`

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// multi is a repeatable key=value flag.
type multi map[string]string

func (m multi) String() string { return "" }

func (m multi) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("want service=value, got %q", v)
	}
	if _, dup := m[k]; dup {
		return fmt.Errorf("%s given twice", k)
	}
	m[k] = val
	return nil
}

type options struct {
	env, envDir, kubeconfig, actor string
	jsonOut, markdownOut, output   string
	values                         string
	images, readiness              multi
	to                             int
	force, verbose                 bool
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
	case "deploy", "rollback", "status", "history":
	default:
		fmt.Fprintf(stderr, "krgeobuk: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	o := options{images: multi{}, readiness: multi{}}
	fl := flag.NewFlagSet("krgeobuk "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&o.env, "env", "", "environment name (required): a folder under environments/")
	fl.StringVar(&o.envDir, "environments", "", "directory holding environments/<env>/ (default: the ones built into this binary)")
	fl.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default $KUBECONFIG); its current context is used")
	fl.StringVar(&o.actor, "actor", "", "who runs this, recorded on revisions (default $USER@host)")
	fl.StringVar(&o.output, "output", "table", "what to print on stdout: table, json or markdown")
	fl.StringVar(&o.jsonOut, "json", "", "also write the JSON result to this file")
	fl.StringVar(&o.markdownOut, "markdown", "", "also write the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
	fl.BoolVar(&o.verbose, "verbose", false, "log Helm's and client-go's own messages too")
	if cmd == "deploy" {
		fl.Var(o.images, "image", "service=image reference, by digest or tag; repeat for every enabled service")
		fl.StringVar(&o.values, "values", "", "YAML file of values laid over the environment's")
	}
	if cmd == "deploy" || cmd == "rollback" {
		fl.Var(o.readiness, "readiness-url", "service=URL to ask instead of the API server's service proxy; repeatable")
	}
	if cmd == "rollback" {
		fl.IntVar(&o.to, "to", 0, "revision to return to (default: the newest verified revision before the current one)")
		fl.BoolVar(&o.force, "force", false, "allow a revision that was never verified")
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
	if o.env == "" {
		fmt.Fprintf(stderr, "krgeobuk %s: --env is required\n", cmd)
		return exitUsage
	}
	switch o.output {
	case "table", "json", "markdown":
	default:
		fmt.Fprintf(stderr, "krgeobuk %s: --output must be table, json or markdown\n", cmd)
		return exitUsage
	}
	if !o.verbose {
		// client-go reports every dropped watch (an API server restart) on
		// stderr; the gates already retry, so it is noise here.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	res := execute(ctx, cmd, o, stderr)
	return write(res, o, stdout, stderr)
}

func execute(ctx context.Context, cmd string, o options, log io.Writer) (out result) {
	out.red = &report.Redactor{}
	var fsys fs.FS = k8s.Environments
	if o.envDir != "" {
		fsys = os.DirFS(o.envDir)
	}
	env, err := environment.Load(fsys, o.env)
	if err != nil {
		out.res = deploy.Refused(cmd, nil, err, out.red)
		return out
	}
	if o.kubeconfig == "" {
		out.res = deploy.Refused(cmd, env, errors.New("no kubeconfig: pass --kubeconfig FILE or set $KUBECONFIG"), out.red)
		return out
	}
	kubeconfig, err := os.ReadFile(o.kubeconfig)
	if err != nil {
		out.res = deploy.Refused(cmd, env, fmt.Errorf("kubeconfig: %w", err), out.red)
		return out
	}
	out.red.Add(report.SecretsFromKubeconfig(kubeconfig)...)
	d, err := deploy.New(deploy.Config{
		Kubeconfig: kubeconfig, Env: env, Actor: o.actor, Log: log, Verbose: o.verbose, ReadinessURLs: o.readiness,
		Registry: &registry.Resolver{Options: []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}},
	})
	if err != nil {
		out.res = deploy.Refused(cmd, env, err, out.red)
		return out
	}
	out.red = d.Redactor()
	switch cmd {
	case "deploy":
		var values map[string]any
		if o.values != "" {
			data, err := os.ReadFile(o.values)
			if err == nil {
				err = yaml.Unmarshal(data, &values)
			}
			if err != nil {
				out.res = deploy.Refused(cmd, env, fmt.Errorf("values file %s: %w", o.values, err), out.red)
				return out
			}
		}
		out.res = d.Deploy(ctx, deploy.Request{Images: o.images, Values: values})
	case "rollback":
		out.res = d.Rollback(ctx, deploy.RollbackRequest{Revision: o.to, Force: o.force})
	case "status":
		out.res = d.Status(ctx)
	case "history":
		out.res = d.History(ctx)
	}
	return out
}

type result struct {
	res *report.Result
	red *report.Redactor
}

// write prints the result and writes the requested files; the exit code
// follows the verdict.
func write(r result, o options, stdout, stderr io.Writer) int {
	render := map[string]func(io.Writer, *report.Result, *report.Redactor) error{
		"table": report.Table, "json": report.JSON, "markdown": report.Markdown,
	}
	if err := render[o.output](stdout, r.res, r.red); err != nil {
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
			err = render[files[p]](f, r.res, r.red)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "krgeobuk: write %s: %v\n", p, err)
			return exitFailed
		}
	}
	if !r.res.OK {
		return exitFailed
	}
	return exitOK
}
