package registrytest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
)

func TestLoginRoundTripsAndRefusesAnIncompleteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "login.json")
	want := registrytest.Login{Host: "10.87.0.1:5443", Username: "e2e", PasswordFile: "/run/pw", CAFile: "/run/ca.pem"}
	require.NoError(t, registrytest.WriteLogin(path, want))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	got, err := registrytest.ReadLogin(path)
	require.NoError(t, err)
	require.Equal(t, want, got)

	for name, body := range map[string]string{
		"not JSON":   "{",
		"no CA file": `{"host":"h:1","username":"u","passwordFile":"/p"}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.json")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			_, err := registrytest.ReadLogin(p)
			require.ErrorContains(t, err, p)
		})
	}
}
