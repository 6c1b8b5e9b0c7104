package e2e

import (
	_ "github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	_ "github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)
