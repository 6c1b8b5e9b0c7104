package registrytest

import (
	"encoding/pem"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func pemDecode(t *testing.T, path string) ([]byte, string) {
	t.Helper()
	block, _ := pem.Decode([]byte(readFile(t, path)))
	require.NotNil(t, block, "%s is PEM", path)
	return block.Bytes, block.Type
}
