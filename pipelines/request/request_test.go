package request_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/request"
)

func TestPairs(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    map[string]string
		wantErr string
	}{
		{"none", nil, map[string]string{}, ""},
		{"trimmed", []string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:ab", " auth-client = ghcr.io/krgeobuk/auth-client:1 "},
			map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@sha256:ab", "auth-client": "ghcr.io/krgeobuk/auth-client:1"}, ""},
		{"no equals sign", []string{"auth-server"}, nil, `--image "auth-server": want service=repository@sha256:...`},
		{"no service", []string{"=a"}, nil, `--image "=a": want service=repository@sha256:...`},
		{"no value", []string{"auth-server= "}, nil, `--image "auth-server= ": want service=repository@sha256:...`},
		{"twice", []string{"auth-server=a", "auth-server=b"}, nil, "--image: service auth-server given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := request.Images(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	_, err := request.Pairs("--readiness-url", "URL", []string{"auth-server"})
	require.EqualError(t, err, `--readiness-url "auth-server": want service=URL`)
}

func TestValues(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr string
	}{
		{"mapping", "services:\n  auth-server:\n    replicas: 3\n", map[string]any{"services": map[string]any{"auth-server": map[string]any{"replicas": float64(3)}}}, ""},
		{"empty", "", nil, ""},
		{"list", "- replicas: 3\n", nil, "--values: not a YAML mapping of chart values"},
		{"scalar", "three", nil, "--values: not a YAML mapping of chart values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := request.Values([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestFormats(t *testing.T) {
	res := &report.Result{Command: "status", Environment: "staging", Verdict: report.Reported, OK: true, Summary: "token s3cr3t-token"}
	red := &report.Redactor{}
	red.Add("s3cr3t-token")
	for _, f := range request.Formats {
		require.NoError(t, request.CheckFormat(f))
		var b bytes.Buffer
		require.NoError(t, request.Render(&b, f, res, red))
		require.NotContains(t, b.String(), "s3cr3t-token", f)
		require.Contains(t, b.String(), report.Redacted, f)
	}
	require.EqualError(t, request.CheckFormat("yaml"), `--format "yaml": want one of table, markdown, json`)
	require.Equal(t, "table", request.Formats[0], "the default")
}

func TestCredentials(t *testing.T) {
	pw := request.Bytes([]byte("ghp-token-1234\n"))
	tests := []struct {
		name    string
		creds   request.Credentials
		secret  string
		wantErr string
	}{
		{"neither: the default keychain", request.Credentials{}, "", ""},
		{"both", request.Credentials{Username: "ci-bot", Password: pw}, "ghp-token-1234", ""},
		{"user without password", request.Credentials{Username: "ci-bot"}, "", "give both --username and --password, or neither"},
		{"password without user", request.Credentials{Password: pw}, "", "give both --username and --password, or neither"},
		{"source flags named", request.Credentials{Flag: "source-", Username: "x"}, "", "give both --source-username and --source-password, or neither"},
		{"unreadable password", request.Credentials{Username: "u", Password: func(context.Context) ([]byte, error) { return nil, errors.New("gone") }},
			"", "--password: gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, secret, err := tt.creds.Options(context.Background())
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, opts, 1)
			require.Equal(t, tt.secret, secret, "the password, without a file's final newline, for the redactor")
		})
	}
}

func TestFromRef(t *testing.T) {
	t.Setenv("REQUEST_TEST_TOKEN", "from-env")
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	for ref, want := range map[string]string{"env:REQUEST_TEST_TOKEN": "from-env", "file:" + file: "from-file\n"} {
		src, err := request.FromRef(ref)
		require.NoError(t, err)
		got, err := src(context.Background())
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
	for _, ref := range []string{"hunter22", "env:", "cmd:pass show x", ""} {
		_, err := request.FromRef(ref)
		require.EqualError(t, err, "a secret is given as env:NAME or file:PATH, never in clear", ref)
	}
	src, err := request.FromRef("env:REQUEST_TEST_UNSET")
	require.NoError(t, err)
	_, err = src(context.Background())
	require.EqualError(t, err, "environment variable REQUEST_TEST_UNSET is not set")
}

// never is a Source a refused request must not read.
func never(t *testing.T) request.Source {
	return func(context.Context) ([]byte, error) {
		t.Error("a refused request read a source")
		return nil, errors.New("read")
	}
}

// Every bad argument is a refused report naming it, and nothing (kubeconfig,
// values, password) is read for it.
func TestRunRefusesBadInputBeforeReadingAnything(t *testing.T) {
	base := func(t *testing.T) request.Op {
		return request.Op{Command: request.Deploy, Env: "staging", Kubeconfig: never(t), Values: never(t),
			Images: []string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:" + strings.Repeat("a", 64)}}
	}
	tests := []struct {
		name string
		edit func(t *testing.T, op *request.Op)
		want string
	}{
		{"unknown environment", func(t *testing.T, op *request.Op) { op.Env = "qa" }, `environment "qa": unknown`},
		{"unknown command", func(t *testing.T, op *request.Op) { op.Command = "launch" }, `unknown command "launch"`},
		{"bad format", func(t *testing.T, op *request.Op) { op.Format = "yaml" }, `--format "yaml": want one of table, markdown, json`},
		{"bad image pair", func(t *testing.T, op *request.Op) { op.Images = []string{"auth-server"} }, `--image "auth-server": want service=repository@sha256:...`},
		{"duplicate service", func(t *testing.T, op *request.Op) { op.Images = []string{"auth-server=a", "auth-server=b"} }, "--image: service auth-server given twice"},
		{"nothing to deploy", func(t *testing.T, op *request.Op) { op.Images = nil }, "nothing to deploy: give --image"},
		{"images and a build", func(t *testing.T, op *request.Op) { op.Build = &request.Build{Registry: "ghcr.io/krgeobuk"} }, "not both"},
		{"a build without a tag", func(t *testing.T, op *request.Op) {
			op.Images, op.Build = nil, &request.Build{Registry: "ghcr.io/krgeobuk"}
		}, "or build and publish first: --registry and --tag with each service's source (--<service>-source DIR or --git service=URL#REF)"},
		{"images and sources", func(t *testing.T, op *request.Op) {
			op.Build = &request.Build{Sources: build.SourceArgs{Directories: []string{"auth-server"}}}
		}, "--image deploys given images; --registry, --tag and the services' sources are for building them, not both"},
		{"a build without sources", func(t *testing.T, op *request.Op) {
			op.Images, op.Build = nil, &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Publish: neverPublish(t)}
		}, "sources: auth-server has no source: give its checkout (--auth-server-source DIR) or a git ref (--git auth-server=URL#REF)"},
		{"a build of the examples for staging", func(t *testing.T, op *request.Op) {
			op.Images, op.Build = nil, &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Publish: neverPublish(t),
				Sources: build.SourceArgs{Examples: []string{"auth-server", "authz-server", "auth-client", "portal-client"}}}
		}, "sources: --example auth-server: the examples are never built for staging (only for development)"},
		{"a build of the examples for production", func(t *testing.T, op *request.Op) {
			op.Env, op.Images, op.Services = "production", nil, []string{"auth-client"}
			op.Build = &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Publish: neverPublish(t),
				Sources: build.SourceArgs{Examples: []string{"auth-client"}}}
		}, "--example auth-client: the examples are never built for production"},
		{"a source for a service not being built", func(t *testing.T, op *request.Op) {
			op.Images, op.Services = nil, []string{"auth-server"}
			op.Build = &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Publish: neverPublish(t),
				Sources: build.SourceArgs{Directories: []string{"auth-server", "portal-client"}}}
		}, "--portal-client-source: portal-client is not being built"},
		{"a build for staging without a signing key", func(t *testing.T, op *request.Op) {
			op.Images = nil
			op.Build = &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Publish: neverPublish(t),
				Sources: build.SourceArgs{Directories: []string{"auth-server", "authz-server", "auth-client", "portal-client"}}}
		}, "environment staging requires signed images: give --signing-key (a PEM private key as a secret, e.g. env:COSIGN_KEY)"},
		{"--signed-by where the environment names its own keys", func(t *testing.T, op *request.Op) { op.SignedBy = never(t) },
			"--signed-by: environment staging accepts only the keys its environment.yaml names (cosign.pub); change them there"},
		{"--signed-by given a private key", func(t *testing.T, op *request.Op) {
			op.Env, op.SignedBy = "development", request.Bytes(privateKeyPEM(t))
		}, "--signed-by holds a private key (PRIVATE KEY): only the public key belongs here"},
		{"--signed-by given something else", func(t *testing.T, op *request.Op) {
			op.Env, op.SignedBy = "development", request.Bytes([]byte("ssh-ed25519 AAAA"))
		}, "--signed-by is not PEM"},
		{"bad readiness URL", func(t *testing.T, op *request.Op) { op.ReadinessURLs = []string{"x"} }, `--readiness-url "x": want service=URL`},
		{"prometheus URL without a scheme", func(t *testing.T, op *request.Op) { op.PrometheusURL = "prometheus:9090" },
			"--prometheus-url: want http://host:port or https://host:port"},
		{"prometheus URL with credentials", func(t *testing.T, op *request.Op) { op.PrometheusURL = "http://ci:hunter2@prometheus:9090" },
			"--prometheus-url: credentials do not belong in a flag"},
		{"user without password", func(t *testing.T, op *request.Op) { op.Registry.Username = "ci-bot" }, "give both --username and --password, or neither"},
		{"negative revision", func(t *testing.T, op *request.Op) { op.Command, op.Revision = request.Rollback, -1 }, "--revision -1: revisions start at 1"},
		{"missing kubeconfig", func(t *testing.T, op *request.Op) { op.Kubeconfig = nil }, "no kubeconfig: --kubeconfig is required"},
		{"unknown stack", func(t *testing.T, op *request.Op) { op.Stack = "logging" }, `--stack "logging": want one of apps, monitoring`},
		{"a build of the monitoring stack", func(t *testing.T, op *request.Op) {
			op.Stack, op.Images, op.Build = "monitoring", nil, &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1"}
		}, "--registry, --tag, --service and the services' sources build, publish and deploy the apps' images; the monitoring stack runs the images its chart names"},
		{"sources for the monitoring stack", func(t *testing.T, op *request.Op) {
			op.Stack, op.Images, op.Build = "monitoring", nil, &request.Build{Sources: build.SourceArgs{Git: []string{"auth-server=https://github.com/krgeobuk/auth-server#main"}}}
		}, "the monitoring stack runs the images its chart names"},
		{"a partial deploy of the monitoring stack", func(t *testing.T, op *request.Op) {
			op.Stack, op.Images, op.Services = "monitoring", nil, []string{"auth-server"}
		}, "--registry, --tag, --service and the services' sources build, publish and deploy the apps' images"},
		{"a partial deploy of an unknown service", func(t *testing.T, op *request.Op) { op.Services = []string{"billing"} }, `--service billing: unknown service "billing"`},
		{"a service named twice", func(t *testing.T, op *request.Op) { op.Services = []string{"auth-server", "auth-server"} }, "--service: auth-server given twice"},
		{"a partial deploy without the named service's image", func(t *testing.T, op *request.Op) { op.Services = []string{"auth-server", "authz-server"} },
			"--service authz-server: no --image given for it"},
		{"an image for a service not named", func(t *testing.T, op *request.Op) { op.Services = []string{"authz-server"} },
			"--service authz-server: no --image given for it"},
		{"an image beside the services named", func(t *testing.T, op *request.Op) {
			op.Services = []string{"authz-server"}
			op.Images = append(op.Images, "authz-server=ghcr.io/krgeobuk/authz-server@sha256:"+strings.Repeat("b", 64))
		}, "--image auth-server: not among the --service deployed (authz-server)"},
		{"a monitoring stack the environment does not place", func(t *testing.T, op *request.Op) {
			op.Stack, op.Images, op.Environments = "monitoring", nil, environmentWithoutMonitoring(t)
		}, "--stack monitoring: environment staging does not deploy the monitoring stack: its environment.yaml has no monitoring: block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := base(t)
			tt.edit(t, &op)
			out := request.Run(context.Background(), op)
			require.Equal(t, report.Refused, out.Result.Verdict)
			require.False(t, out.OK())
			require.Contains(t, out.Result.Error, tt.want)
			require.NotContains(t, out.Result.Error, "hunter2", "a refused flag's secret is not echoed")
			require.Equal(t, "Refused before anything changed: "+out.Result.Error, out.Result.Summary)
			require.Equal(t, op.Env, out.Result.Environment)
			_, err := out.Text()
			require.ErrorContains(t, err, op.Command+" "+op.Env+": refused\n", "a not-OK run is an error carrying the report")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// neverPublish is a Build.Publish a refused request must not call.
func neverPublish(t *testing.T) func(context.Context) (map[string]string, error) {
	return func(context.Context) (map[string]string, error) {
		t.Error("a refused request built and published")
		return nil, errors.New("publish")
	}
}

// A deploy that builds passes the sources check with the deploy's
// environment (and, for staging, which requires signatures, has a signing
// key), then publishes before reading the kubeconfig.
func TestRunBuildsFromGivenSources(t *testing.T) {
	for _, tt := range []struct {
		env     string
		sources build.SourceArgs
	}{
		{"staging", build.SourceArgs{Directories: []string{"auth-server", "authz-server"}, Git: []string{
			"auth-client=https://github.com/krgeobuk/auth-client#main", "portal-client=git@github.com:krgeobuk/portal-client#v1"}}},
		{"development", build.SourceArgs{Examples: []string{"auth-server", "authz-server", "auth-client", "portal-client"}}},
	} {
		var published bool
		out := request.Run(context.Background(), request.Op{Command: request.Deploy, Env: tt.env, Kubeconfig: request.Bytes([]byte("apiVersion: v1\nkind: Config\n")),
			Build: &request.Build{Registry: "ghcr.io/krgeobuk", Tag: "v1", Sources: tt.sources, Signed: tt.env == "staging",
				Publish: func(context.Context) (map[string]string, error) {
					published = true
					return nil, errors.New("registry down")
				}}})
		require.True(t, published, tt.env)
		require.Equal(t, report.Refused, out.Result.Verdict)
		require.Equal(t, "registry down", out.Result.Error, "the publish ran, and its failure is the report")
	}
}

// environmentWithoutMonitoring is the embedded staging without its
// monitoring: block.
func environmentWithoutMonitoring(t *testing.T) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range []string{"environment.yaml", "krgeobuk-apps.values.yaml", "monitoring-stack.values.yaml", "cosign.pub"} {
		data, err := k8s.Environments.ReadFile("environments/staging/" + f)
		require.NoError(t, err)
		if f == "environment.yaml" {
			i := strings.Index(string(data), "monitoring:\n")
			j := strings.Index(string(data), "gates:\n")
			require.True(t, i > 0 && j > i)
			data = append(append([]byte{}, data[:i]...), data[j:]...)
		}
		fsys["environments/staging/"+f] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// A monitoring deploy names the stack's own release in its refusal, and
// needs neither images nor a build: it runs the images its chart names.
func TestRunMonitoringStack(t *testing.T) {
	for _, cmd := range []string{request.Deploy, request.Rollback, request.Status, request.History} {
		var published bool
		out := request.Run(context.Background(), request.Op{Command: cmd, Stack: "monitoring", Env: "staging",
			Kubeconfig: request.Bytes([]byte("apiVersion: v1\nkind: Config\n")),
			Build:      &request.Build{Publish: func(context.Context) (map[string]string, error) { published = true; return nil, nil }}})
		require.Equal(t, report.Refused, out.Result.Verdict, "%s: a kubeconfig without a cluster", cmd)
		require.NotContains(t, out.Result.Error, "nothing to deploy", cmd)
		require.Contains(t, out.Result.Error, "invalid configuration", cmd)
		require.False(t, published, "%s: nothing to build for the monitoring stack", cmd)
		require.Equal(t, "monitoring", out.Result.Stack, cmd)
		require.Equal(t, "monitoring", out.Result.Namespace, cmd)
		require.Equal(t, "monitoring", out.Result.Release, cmd)
	}
}

// A values file that is not a mapping is refused once read, before the
// kubeconfig is.
func TestRunRefusesValuesThatAreNotAMapping(t *testing.T) {
	out := request.Run(context.Background(), request.Op{Command: request.Deploy, Env: "staging", Kubeconfig: never(t),
		Values: request.Bytes([]byte("- replicas: 3\n")), Images: []string{"auth-server=x"}, Format: "markdown"})
	require.Equal(t, report.Refused, out.Result.Verdict)
	require.Contains(t, out.Result.Error, "--values: not a YAML mapping of chart values")
	require.Equal(t, "markdown", out.Format)
}

// A secret read before a refusal (the kubeconfig's token) never reaches the
// report.
func TestRunRedactsARefusalAfterTheKubeconfigIsRead(t *testing.T) {
	const token = "deployer-token-7d2e"
	out := request.Run(context.Background(), request.Op{Command: request.Status, Env: "staging",
		Kubeconfig: request.Bytes([]byte("apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: " + token + "}}]\n")),
		KubeAPI:    func(context.Context) (string, error) { return "", errors.New("tunnel to " + token + " failed") }})
	require.Equal(t, report.Refused, out.Result.Verdict)
	for _, f := range request.Formats {
		var b bytes.Buffer
		require.NoError(t, out.Render(&b, f))
		require.Contains(t, b.String(), "kube-api: tunnel to")
		require.NotContains(t, b.String(), token, f)
	}
}

func TestPromoteRefusesBadInput(t *testing.T) {
	digest := "auth-server=ghcr.io/krgeobuk/auth-server@sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name string
		p    request.Promotion
		want string
	}{
		{"same environment", request.Promotion{From: "staging", To: "staging"}, `promote: --from and --to are both "staging"`},
		{"unknown environment", request.Promotion{From: "qa", To: "production"}, `promote: environment "qa": unknown`},
		{"bad image pair", request.Promotion{From: "staging", To: "production", Images: []string{"x"}}, `promote: --image "x": want service=`},
		{"nothing to read", request.Promotion{From: "staging", To: "production"},
			"promote: --kubeconfig is required: what is promoted must be what staging's current verified revision runs"},
		{"named images are checked too", request.Promotion{From: "staging", To: "production", Images: []string{digest}},
			"promote: --kubeconfig is required"},
		{"nowhere to deploy", request.Promotion{From: "staging", To: "production", Kubeconfig: request.Bytes(nil)},
			"promote: --to-kubeconfig is required to deploy the promoted images to production (or --copy-only to copy them without deploying)"},
		{"bad readiness URL", request.Promotion{From: "staging", To: "production", ReadinessURLs: []string{"auth-server"}},
			`promote: --readiness-url "auth-server": want service=URL`},
		{"prometheus URL with credentials", request.Promotion{From: "staging", To: "production", PrometheusURL: "https://ci:hunter2@prom.example:443"},
			"promote: --prometheus-url: credentials do not belong in a flag"},
		{"bad format", request.Promotion{From: "staging", To: "production", Format: "yaml"}, `promote: --format "yaml"`},
		{"tag instead of digest", request.Promotion{From: "staging", To: "production", Images: []string{"auth-server=ghcr.io/krgeobuk/auth-server:1"}},
			"is not pinned by digest"},
		{"source user without password", request.Promotion{From: "staging", To: "production", Images: []string{digest},
			Source: request.Credentials{Username: "u"}}, "give both --source-username and --source-password"},
		{"malformed registry", request.Promotion{From: "staging", To: "production", Images: []string{digest}, ToRegistry: "ghcr.io/Krgeobuk"},
			`registry "ghcr.io/Krgeobuk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := request.Promote(context.Background(), tt.p)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// privateKeyPEM is a fresh ECDSA private key, PKCS#8 PEM, as openssl genpkey
// writes it: what a user might give --signed-by by mistake.
func privateKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
