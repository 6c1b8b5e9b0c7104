// Package distconsts stands in for github.com/dagger/dagger/engine/distconsts, a nested module of
// the dagger repository that the module proxy does not serve. It is the one copy the project
// builds against: codegen (scripts/codegen/tools), the engine (scripts/engine copies it into the
// engine's source as engine/distconsts) and the e2e session client (a replace in e2e/go.mod).
// The values are the engine v0.21.8 defaults; the engine reads the paths (runc, dagger-init,
// builtin content store, state folder), the SDK digest variable names and, for its terminal and
// integration tests only, the image names.
package distconsts

const (
	RuncPath                         = "/usr/local/bin/runc"
	DaggerInitPath                   = "/usr/local/bin/dagger-init"
	EngineDefaultStateDir            = "/var/lib/dagger"
	EngineCustomCACertsDir           = "/usr/local/share/ca-certificates"
	EngineContainerName              = "dagger-engine.dev"
	EngineContainerBuiltinContentDir = "/usr/local/share/dagger/content"
	DefaultEngineSockAddr            = "unix:///run/dagger/engine.sock"
	OCIVersionAnnotation             = "org.opencontainers.image.version"

	GoSDKManifestDigestEnvName         = "DAGGER_GO_SDK_MANIFEST_DIGEST"
	PythonSDKManifestDigestEnvName     = "DAGGER_PYTHON_SDK_MANIFEST_DIGEST"
	TypescriptSDKManifestDigestEnvName = "DAGGER_TYPESCRIPT_SDK_MANIFEST_DIGEST"

	AlpineVersion = "3.22.2"
	AlpineImage   = "alpine:" + AlpineVersion
	GolangImage   = "golang:1.26-alpine"
	BusyboxImage  = "busybox:1.37.0"
)
