package request

import "github.com/krgeobuk/krgeobuk-infra/pipelines/registry"

// The names of arguments both doors take for the same thing: the CLI's flag
// and the Dagger function's argument (dagger call spells a Go parameter
// readinessUrl as --readiness-url). They are declared once here; the CLI
// declares its flags with them, and ci/doors_test.go checks that the
// module's functions and the CLI's commands take every name Shared lists.
//
// The import is for FlagRegistryCA alone: pipelines/registry writes the
// messages that name it.
const (
	FlagStack        = "stack"
	FlagImage        = "image"
	FlagService      = "service"
	FlagValues       = "values"
	FlagFormat       = "format"
	FlagRevision     = "revision"
	FlagForce        = "force"
	FlagTakeOverLock = "take-over-lock"
	FlagReadinessURL = "readiness-url"
	// FlagPrometheusURL is the Prometheus the analysis gate asks instead
	// of the monitoring release's (through a port-forward).
	FlagPrometheusURL = "prometheus-url"
	FlagKubeconfig    = "kubeconfig"
	FlagUsername      = "username"
	FlagPassword      = "password"
	// FlagRegistryCA is a PEM file of CAs trusted beyond the system's for
	// every registry request (deploy's image lookups, both sides of a
	// promotion's copy).
	FlagRegistryCA = registry.FlagCA
	// FlagSignedBy is a PEM public key deploy requires every image to be
	// signed with, where the environment itself requires no signatures.
	FlagSignedBy = "signed-by"

	FlagFrom           = "from"
	FlagTo             = "to"
	FlagToRegistry     = "to-registry"
	FlagToKubeconfig   = "to-kubeconfig"
	FlagCopyOnly       = "copy-only"
	FlagSourceUsername = "source-username"
	FlagSourcePassword = "source-password"
)

// PromoteCommand is the promotion's command name on both doors.
const PromoteCommand = "promote"

// Shared lists, per command, the arguments both doors take under the same
// name.
var Shared = map[string][]string{
	Deploy:   {FlagStack, FlagImage, FlagService, FlagValues, FlagFormat, FlagTakeOverLock, FlagReadinessURL, FlagPrometheusURL, FlagKubeconfig, FlagUsername, FlagPassword, FlagRegistryCA, FlagSignedBy},
	Rollback: {FlagStack, FlagRevision, FlagForce, FlagFormat, FlagTakeOverLock, FlagReadinessURL, FlagKubeconfig},
	Status:   {FlagStack, FlagFormat, FlagKubeconfig},
	History:  {FlagStack, FlagFormat, FlagKubeconfig},
	PromoteCommand: {FlagFrom, FlagTo, FlagImage, FlagKubeconfig, FlagToRegistry, FlagToKubeconfig, FlagCopyOnly, FlagReadinessURL, FlagPrometheusURL, FlagFormat,
		FlagUsername, FlagPassword, FlagSourceUsername, FlagSourcePassword, FlagRegistryCA},
}
