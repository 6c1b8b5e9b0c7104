package report

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
)

// Redacted replaces every secret in rendered output.
const Redacted = "[REDACTED]"

// minSecret is the shortest string treated as a secret: shorter ones would
// blank out ordinary words and numbers everywhere.
const minSecret = 4

// Redactor removes known secret values from text. It also removes their
// base64 and JSON-escaped forms, the shapes a secret takes in manifests and
// API errors. The zero value redacts nothing.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
	re      *strings.Replacer
}

// Add registers secrets; empty and very short strings are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range r.secrets {
		seen[s] = true
	}
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		q, _ := json.Marshal(s)
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), strings.Trim(string(q), `"`)} {
			if !seen[form] {
				seen[form] = true
				r.secrets = append(r.secrets, form)
			}
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	pairs := make([]string, 0, 2*len(r.secrets))
	for _, s := range r.secrets {
		pairs = append(pairs, s, Redacted)
	}
	r.re = strings.NewReplacer(pairs...)
}

// String returns s with every registered secret replaced.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.re == nil {
		return s
	}
	return r.re.Replace(s)
}

// Writer wraps w so that every Write is redacted. Writes are redacted one at
// a time: callers must write whole lines (as log.Logger and fmt.Fprintf
// callers do), or a secret split across two writes would pass.
func (r *Redactor) Writer(w io.Writer) io.Writer { return redactWriter{r, w} }

type redactWriter struct {
	r *Redactor
	w io.Writer
}

func (rw redactWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

var (
	sensitiveKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|credential|apikey|api_key|private)`)
	// Names of Secrets and switches are not themselves secret, and hiding
	// them would hide the most useful word of a "secret not found" error.
	notSecretKey = regexp.MustCompile(`(?i)^(existingsecret|secretname|tlssecretname|name|create|enabled|secretref)$`)
)

// SecretsFromValues returns the string values that look secret: every
// string under a key whose name mentions password, secret, token,
// credential or a private key, except the names of Secrets.
func SecretsFromValues(values map[string]any) []string {
	var out []string
	var walk func(v any, sensitive bool, key string)
	walk = func(v any, sensitive bool, key string) {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				walk(e, sensitive || sensitiveKey.MatchString(k), k)
			}
		case []any:
			for _, e := range t {
				walk(e, sensitive, key)
			}
		case string:
			if sensitive && !notSecretKey.MatchString(key) {
				out = append(out, t)
			}
		}
	}
	walk(values, false, "")
	return out
}

// SecretsFromKubeconfig returns the credentials in a kubeconfig: tokens,
// passwords, client keys, auth-provider settings and exec environment
// values. It returns nothing for bytes that do not parse.
func SecretsFromKubeconfig(data []byte) []string {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range cfg.AuthInfos {
		out = append(out, a.Token, a.Password, string(a.ClientKeyData))
		out = append(out, base64.StdEncoding.EncodeToString(a.ClientKeyData))
		if a.AuthProvider != nil {
			for _, v := range a.AuthProvider.Config {
				out = append(out, v)
			}
		}
		if a.Exec != nil {
			for _, e := range a.Exec.Env {
				out = append(out, e.Value)
			}
		}
	}
	return out
}
