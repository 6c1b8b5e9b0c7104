package daggercli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFinalError(t *testing.T) {
	tests := []struct{ name, stderr, want string }{
		{
			name: "the last Error: after the plain progress, without its trace id",
			stderr: "1   : connect\n9   : \x1b[33m! deploy: refused {\"ok\":false}\x1b[0m\n\n" +
				"Error: deploy development: uninstalled\n{\"ok\": false}\n [traceparent:8fb8-94eb]\n",
			want: "deploy development: uninstalled\n{\"ok\": false}",
		},
		{name: "an error on the first line", stderr: "Error: required flag(s) \"kubeconfig\" not set\n", want: `required flag(s) "kubeconfig" not set`},
		{name: "no error line", stderr: "killed\n", want: "(no error line)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, finalError(tt.stderr))
		})
	}
}
