package registrytest

import (
	"encoding/json"
	"fmt"
	"os"
)

// Login is how another program logs in to a registry Write laid out, as the
// JSON file WriteLogin makes: where the registry is, its account and its CA.
// The password stays in its own 0600 file, never in this JSON or on a
// command line. `engine up` writes one; the e2e suite reads it.
type Login struct {
	Host         string `json:"host"`
	Username     string `json:"username"`
	PasswordFile string `json:"passwordFile"`
	CAFile       string `json:"caFile"`
}

// WriteLogin writes l to path (0600).
func WriteLogin(path string, l Login) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadLogin reads what WriteLogin wrote, refusing a file that names no host,
// user, password file or CA file.
func ReadLogin(path string) (Login, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Login{}, err
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil {
		return Login{}, fmt.Errorf("%s: %w", path, err)
	}
	if l.Host == "" || l.Username == "" || l.PasswordFile == "" || l.CAFile == "" {
		return Login{}, fmt.Errorf("%s: want host, username, passwordFile and caFile", path)
	}
	return l, nil
}
