package request

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Pairs reads repeated service=value arguments of the flag named flag (for
// messages: "--image"). want describes the value ("repository@sha256:...").
// A malformed pair or a service named twice is refused rather than silently
// dropped or overridden.
func Pairs(flag, want string, pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		svc, val, ok := strings.Cut(p, "=")
		svc, val = strings.TrimSpace(svc), strings.TrimSpace(val)
		if !ok || svc == "" || val == "" {
			return nil, fmt.Errorf("%s %q: want service=%s", flag, p, want)
		}
		if _, dup := out[svc]; dup {
			return nil, fmt.Errorf("%s: service %s given twice", flag, svc)
		}
		out[svc] = val
	}
	return out, nil
}

// Images reads --image service=reference pairs.
func Images(pairs []string) (map[string]string, error) {
	return Pairs("--image", "repository@sha256:...", pairs)
}

// Values reads a values file's content: chart values laid over the
// environment's. Anything but a YAML mapping is refused here, before a
// cluster is contacted. Empty content means no values.
func Values(data []byte) (map[string]any, error) {
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("--values: not a YAML mapping of chart values: %w", err)
	}
	return values, nil
}

// Formats are the report formats both doors print, the default first.
var Formats = []string{"table", "markdown", "json"}

// CheckFormat refuses a report format that is not one of Formats.
func CheckFormat(format string) error {
	if !slices.Contains(Formats, format) {
		return fmt.Errorf("--format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	return nil
}

// Render writes res in format, every secret red knows replaced. An unknown
// format renders as a table (CheckFormat has refused it already).
func Render(w io.Writer, format string, res *report.Result, red *report.Redactor) error {
	switch format {
	case "json":
		return report.JSON(w, res, red)
	case "markdown":
		return report.Markdown(w, res, red)
	default:
		return report.Table(w, res, red)
	}
}
