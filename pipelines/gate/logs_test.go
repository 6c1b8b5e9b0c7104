package gate

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTailLines(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes, two per rune
	for _, tc := range []struct {
		name string
		log  string
		n    int
		want []string
	}{
		{"last n kept, oldest first", "a\nb\nc\nd\n", 2, []string{"c", "d"}},
		{"blank lines and CRs dropped", "a\r\n\n  \nb\r\n", 5, []string{"a", "b"}},
		{"no trailing newline", "only", 3, []string{"only"}},
		{"empty log", "", 3, nil},
		{"long line cut on a rune boundary", long, 1, []string{strings.Repeat("é", 150) + "…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tailLines(tc.log, tc.n))
		})
	}
}
