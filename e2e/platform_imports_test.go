package e2e

// The end-to-end tests of the module's functions drive the simulated cluster and the deploy
// library; importing them here keeps this module's dependency pins (go.mod) able to build them.
import (
	_ "github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	_ "github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)
