package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseImages(t *testing.T) {
	got, err := parseImages([]string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:ab", " auth-client = ghcr.io/krgeobuk/auth-client:1 "})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"auth-server": "ghcr.io/krgeobuk/auth-server@sha256:ab", "auth-client": "ghcr.io/krgeobuk/auth-client:1"}, got)
	_, err = parseImages([]string{"auth-server=a", "auth-server=b"})
	require.ErrorContains(t, err, "service auth-server given twice")
	_, err = parseImages([]string{"=a"})
	require.ErrorContains(t, err, `--image "=a": want service=repository@sha256:...`)
}
