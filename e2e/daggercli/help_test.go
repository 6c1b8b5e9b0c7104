package daggercli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// secretValue is a flag type named as the CLI names its object flags.
type secretValue struct{ s string }

func (v *secretValue) String() string     { return v.s }
func (v *secretValue) Set(s string) error { v.s = s; return nil }
func (v *secretValue) Type() string       { return "Secret" }

// help renders flags the way the CLI's usage template does: a bold heading per group, then
// pflag's wrapped usages (required flags first, "[required]" appended).
func help(width int, section func(fs *pflag.FlagSet)) string {
	fs := pflag.NewFlagSet("args", pflag.ContinueOnError)
	fs.SortFlags = false
	section(fs)
	opts := pflag.NewFlagSet("opts", pflag.ContinueOnError)
	opts.Bool("help", false, "help for deploy")
	return "\x1b[1mUSAGE\x1b[0m\n  dagger call deploy [options] [arguments]\n\n" +
		"\x1b[1mARGUMENTS\x1b[0m\n" + fs.FlagUsagesWrapped(width) + "\n" +
		"\x1b[1mOPTIONS\x1b[0m\n" + opts.FlagUsagesWrapped(width)
}

func TestParseHelp(t *testing.T) {
	h := help(60, func(fs *pflag.FlagSet) {
		fs.Var(&secretValue{}, "kubeconfig", "Kubeconfig of the deployer ServiceAccount, from a provider [required]")
		fs.String("env", "staging", "Target environment")
		fs.StringSlice("image", nil, "")
		fs.Bool("dry-run", false, "Only render")
		// a doc comment of several lines starts on the line after the flag, as the CLI prints it
		fs.String("format", "table", "\nReport format: table, markdown or json.\n")
	})
	flags, err := ParseHelp(h)
	require.NoError(t, err, h)
	require.Equal(t, []Flag{
		{Name: "kubeconfig", Type: "Secret", Description: "Kubeconfig of the deployer ServiceAccount, from a provider", Required: true},
		{Name: "env", Type: "string", Description: `Target environment (default "staging")`},
		{Name: "image", Type: "strings"},
		{Name: "dry-run", Description: "Only render"},
		{Name: "format", Type: "string", Description: `Report format: table, markdown or json. (default "table")`},
	}, flags, h)
	require.True(t, strings.Count(h, "\n") > 8, "the long description was wrapped: %s", h)
}

func TestParseHelpWithoutArguments(t *testing.T) {
	flags, err := ParseHelp("\x1b[1mUSAGE\x1b[0m\n  dagger call check\n\n\x1b[1mOPTIONS\x1b[0m\n      --help   help\n")
	require.NoError(t, err)
	require.Empty(t, flags)
}

func TestParseFunctions(t *testing.T) {
	out := "\x1b[1mName\x1b[0m               \x1b[1mDescription\x1b[0m\n" +
		"build              One service's runtime image\n" +
		"check              Run the pre-merge checks any container can run: ...\n" +
		"integration-test   Run an API's own tests\n"
	require.Equal(t, []string{"build", "check", "integration-test"}, ParseFunctions(out))
}
