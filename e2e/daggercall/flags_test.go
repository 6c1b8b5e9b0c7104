package daggercall

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder resolves objects to readable fake IDs and records what it was asked.
type recorder struct{ secrets []string }

func (r *recorder) Directory(_ context.Context, p string) (string, error) { return "dir:" + p, nil }
func (r *recorder) File(_ context.Context, p string) (string, error)      { return "file:" + p, nil }
func (r *recorder) Container(_ context.Context, a string) (string, error) { return "ctr:" + a, nil }
func (r *recorder) Service(_ context.Context, h string, p int) (string, error) {
	return "svc:" + h + ":" + itoa(p), nil
}
func (r *recorder) Secret(_ context.Context, name, plain string) (string, error) {
	r.secrets = append(r.secrets, plain)
	return "secret:" + name, nil
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

var deployFn = Function{
	Name: "deploy",
	Args: []Arg{
		{Name: "env", Type: TypeRef{Kind: KindString}, Required: true},
		{Name: "kubeconfig", Type: TypeRef{Kind: KindObject, Name: "Secret"}, Required: true},
		{Name: "image", Type: TypeRef{Kind: KindList, Optional: true, Elem: &TypeRef{Kind: KindString}}},
		{Name: "kubeApi", Type: TypeRef{Kind: KindObject, Name: "Service", Optional: true}},
		{Name: "source", Type: TypeRef{Kind: KindObject, Name: "Directory", Optional: true}, HasPath: true},
		{Name: "revision", Type: TypeRef{Kind: KindInteger, Optional: true}},
		{Name: "force", Type: TypeRef{Kind: KindBoolean, Optional: true}},
		{Name: "platform", Type: TypeRef{Kind: KindList, Optional: true, Elem: &TypeRef{Kind: KindScalar, Name: "Platform"}}},
		{Name: "mode", Type: TypeRef{Kind: KindEnum, Name: "Mode", Optional: true}},
	},
	Return: TypeRef{Kind: KindString},
}

func TestConvertFlags(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kc")
	require.NoError(t, os.WriteFile(kc, []byte("kube-secret-from-file"), 0o600))
	t.Setenv("KRGEOBUK_TEST_KC", "kube-secret-from-env")

	tests := []struct {
		name        string
		argv        []string
		want        string
		wantSecrets []string
		wantErr     string
	}{
		{
			name:        "strings, secret from a file, repeated list, service, directory",
			argv:        []string{"--env", "staging", "--kubeconfig", "file:" + kc, "--image", "a@sha256:1", "--image=b@sha256:2", "--kube-api", "tcp://127.0.0.1:6443", "--source", "./examples"},
			want:        `(env: "staging", kubeconfig: "secret:kubeconfig", image: ["a@sha256:1", "b@sha256:2"], kubeApi: "svc:127.0.0.1:6443", source: "dir:./examples")`,
			wantSecrets: []string{"kube-secret-from-file"},
		},
		{
			name:        "secret from env, bare boolean, integer, enum, scalar list",
			argv:        []string{"--env=prod", "--kubeconfig", "env:KRGEOBUK_TEST_KC", "--force", "--revision", "3", "--mode", "FAST", "--platform", "linux/amd64"},
			want:        `(env: "prod", kubeconfig: "secret:kubeconfig", revision: 3, force: true, platform: ["linux/amd64"], mode: FAST)`,
			wantSecrets: []string{"kube-secret-from-env"},
		},
		{
			name: "explicit boolean value, quotes escaped",
			argv: []string{"--env", `say "hi"`, "--kubeconfig", "env:KRGEOBUK_TEST_KC", "--force", "false"},
			want: `(env: "say \"hi\"", kubeconfig: "secret:kubeconfig", force: false)`, wantSecrets: []string{"kube-secret-from-env"},
		},
		{name: "missing required flag", argv: []string{"--env", "staging"}, wantErr: "deploy: missing required flag --kubeconfig"},
		{name: "unknown flag names the known ones", argv: []string{"--envv", "x"}, wantErr: "deploy: unknown flag --envv (known: --env --kubeconfig"},
		{name: "positional argument", argv: []string{"staging"}, wantErr: `deploy: unexpected argument "staging"`},
		{name: "flag without value", argv: []string{"--kubeconfig", "env:X", "--env"}, wantErr: "deploy: flag --env needs a value"},
		{name: "scalar flag twice", argv: []string{"--env", "a", "--env", "b", "--kubeconfig", "env:X"}, wantErr: "deploy: flag --env given twice"},
		{name: "bad integer", argv: []string{"--env", "a", "--kubeconfig", "env:KRGEOBUK_TEST_KC", "--revision", "three"}, wantErr: `deploy: --revision: "three" is not an integer`},
		{name: "bad service", argv: []string{"--env", "a", "--kubeconfig", "env:KRGEOBUK_TEST_KC", "--kube-api", "127.0.0.1:6443"}, wantErr: "want tcp://HOST:PORT"},
		{name: "bad enum", argv: []string{"--env", "a", "--kubeconfig", "env:KRGEOBUK_TEST_KC", "--mode", "not valid"}, wantErr: `"not valid" is not a Mode value`},
		{name: "secret env unset", argv: []string{"--env", "a", "--kubeconfig", "env:KRGEOBUK_TEST_UNSET"}, wantErr: "secret env:KRGEOBUK_TEST_UNSET: variable not set"},
		{name: "secret without source", argv: []string{"--env", "a", "--kubeconfig", "plain-text-secret"}, wantErr: "secret must be env:NAME or file:PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			flags, err := ParseFlags(deployFn, tt.argv)
			var got string
			if err == nil {
				got, err = RenderArgs(context.Background(), deployFn, flags, r)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "plain-text-secret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantSecrets, r.secrets)
			for _, s := range r.secrets {
				require.NotContains(t, got, s, "secret value leaked into the query text")
			}
		})
	}
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{"env": "env", "kubeApi": "kube-api", "goImage": "go-image", "integrationTest": "integration-test"} {
		require.Equal(t, want, Kebab(in))
	}
}

func TestParseTypeDefsFindsMainObject(t *testing.T) {
	data := json.RawMessage(`{"currentTypeDefs":[
	 {"kind":"OBJECT_KIND","asObject":{"name":"Query","functions":[
	   {"name":"krgeobuk","returnType":{"kind":"OBJECT_KIND","asObject":{"name":"Krgeobuk"}},"args":[]}]}},
	 {"kind":"OBJECT_KIND","asObject":{"name":"Krgeobuk","functions":[
	   {"name":"status","returnType":{"kind":"STRING_KIND"},"args":[
	     {"name":"env","defaultValue":"","typeDef":{"kind":"STRING_KIND"}},
	     {"name":"format","defaultValue":"\"text\"","typeDef":{"kind":"STRING_KIND","optional":true}},
	     {"name":"source","defaultPath":"/","typeDef":{"kind":"OBJECT_KIND","asObject":{"name":"Directory"}}},
	     {"name":"image","typeDef":{"kind":"LIST_KIND","asList":{"elementTypeDef":{"kind":"STRING_KIND"}}}}]}]}}]}`)
	m, err := parseTypeDefs(data, "krgeobuk")
	require.NoError(t, err)
	fn, ok := m.Functions["status"]
	require.True(t, ok)
	require.Equal(t, []Arg{
		{Name: "env", Type: TypeRef{Kind: KindString}, Required: true},
		{Name: "format", Type: TypeRef{Kind: KindString, Optional: true}, Default: `"text"`},
		{Name: "source", Type: TypeRef{Kind: KindObject, Name: "Directory"}, HasPath: true},
		{Name: "image", Type: TypeRef{Kind: KindList, Elem: &TypeRef{Kind: KindString}}, Required: true},
	}, fn.Args)

	_, err = parseTypeDefs(data, "other-module")
	require.ErrorContains(t, err, `no constructor field "otherModule" on Query`)
}

func TestSelectionAndOutput(t *testing.T) {
	tests := []struct {
		name string
		t    TypeRef
		raw  string
		sel  string
		want string
	}{
		{"string", TypeRef{Kind: KindString}, `"ok"`, "", "ok"},
		{"void", TypeRef{Kind: KindVoid}, `null`, "", ""},
		{"list", TypeRef{Kind: KindList, Elem: &TypeRef{Kind: KindString}}, `["a","b"]`, "", `["a","b"]`},
		{"container is synced", TypeRef{Kind: KindObject, Name: "Container"}, `{"sync":"ctr-id"}`, "{ sync }", "ctr-id"},
		{"other object gives its id", TypeRef{Kind: KindObject, Name: "Report"}, `{"id":"rep-id"}`, "{ id }", "rep-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.sel, selection(tt.t))
			got, err := output(json.RawMessage(tt.raw), tt.t)
			require.NoError(t, err)
			require.Equal(t, tt.want, strings.TrimSpace(got))
		})
	}
}
