package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// JSON writes the result as indented JSON, redacted.
func JSON(w io.Writer, res *Result, r *Redactor) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err = io.WriteString(w, r.String(string(b))+"\n")
	return err
}

// Table writes the result for a terminal: headline, services, problems,
// history, steps and notes, redacted.
func Table(w io.Writer, res *Result, r *Redactor) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (release %s, namespace %s): %s\n", res.Command, res.Environment, res.Release, res.Namespace,
		strings.ToUpper(string(res.Verdict)))
	if res.Summary != "" {
		fmt.Fprintf(&b, "%s\n", res.Summary)
	}
	if len(res.Services) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tREADY\tPHASE\tREADINESS\tIMAGE")
		for _, s := range res.Services {
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\n", s.Name, s.Ready, s.Desired, s.Phase, dash(s.Readiness), dash(s.Image))
		}
		_ = tw.Flush()
	}
	writeProblems := func(title string, ps []gate.Problem) {
		if len(ps) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		for _, p := range ps {
			fmt.Fprintf(&b, "- [%s] %s\n", p.Class, p.String())
			for _, e := range p.Events {
				fmt.Fprintf(&b, "    event: %s\n", e)
			}
			for _, l := range p.Logs {
				fmt.Fprintf(&b, "    log: %s\n", l)
			}
			if p.Suggestion != "" {
				fmt.Fprintf(&b, "    hint: %s\n", p.Suggestion)
			}
		}
	}
	if len(res.Analysis) > 0 {
		b.WriteString("\nANALYSIS\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tSERVICE\tREVISION\tVERDICT\tREQUESTS\t5XX RATIO\tP95\tLOOKS\tTIME")
		for _, a := range res.Analysis {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%ss\n", stepName(a), a.Service, dash(a.Revision), a.Verdict, requests(a),
				ratioVs(a.ErrorRatio, a.MaxRatio), p95Vs(a.P95Seconds, a.MaxP95), len(a.Samples), formatSeconds(time.Duration(a.Elapsed)))
		}
		_ = tw.Flush()
		for _, a := range res.Analysis {
			if st := a.Stable; st != nil {
				fmt.Fprintf(&b, "  %s %s: beside stable %s\n", stepName(a), a.Service, stableVs(a))
			}
			if a.Detail != "" {
				fmt.Fprintf(&b, "  %s %s: %s\n", stepName(a), a.Service, a.Detail)
			}
		}
	}
	writeProblems("PROBLEMS", res.Problems)
	writeProblems("ROLLBACK PROBLEMS", res.RollbackProblems)
	if len(res.History) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REVISION\tSTATUS\tVERIFIED\tUPDATED\tBY\tCHART\tDESCRIPTION")
		for _, h := range res.History {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Number, h.Status, yesNo(h.Verified),
				h.Updated.UTC().Format(time.RFC3339), author(h), h.Chart, oneLine(h.Description, 80))
		}
		_ = tw.Flush()
		for _, h := range res.History {
			for _, svc := range sortedKeys(h.Images) {
				fmt.Fprintf(&b, "  r%d %s %s\n", h.Number, svc, h.Images[svc])
			}
		}
	}
	if len(res.Steps) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tSTATUS\tTIME\tDETAIL")
		for _, s := range res.Steps {
			fmt.Fprintf(tw, "%s\t%s\t%ss\t%s\n", s.Name, s.Status, formatSeconds(time.Duration(s.Duration)), oneLine(s.Detail, 120))
		}
		_ = tw.Flush()
	}
	if res.Lock != nil && res.Lock.Holder != "" {
		state := "expired"
		if res.Lock.Gone != "" {
			state = "stale: " + res.Lock.Gone
		}
		if res.Lock.Live {
			state = "live until " + res.Lock.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "\nlock %s: held by %s (%s)\n", res.Lock.Lease, res.Lock.Holder, state)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if res.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", res.Error)
	}
	_, err := io.WriteString(w, r.String(b.String()))
	return err
}

// Markdown writes a summary for CI pages (GitHub step summary, Jenkins
// description), redacted.
func Markdown(w io.Writer, res *Result, r *Redactor) error {
	var b strings.Builder
	icon := "❌"
	if res.OK {
		icon = "✅"
	} else if res.Verdict == RolledBack {
		icon = "↩️"
	}
	fmt.Fprintf(&b, "### %s %s `%s`: %s\n\n", icon, res.Command, res.Environment, res.Verdict)
	if res.Summary != "" {
		fmt.Fprintf(&b, "%s\n\n", md(res.Summary))
	}
	fmt.Fprintf(&b, "Release `%s` in namespace `%s`", res.Release, res.Namespace)
	if res.Revision > 0 {
		fmt.Fprintf(&b, ", revision %d", res.Revision)
	}
	if res.Actor != "" {
		fmt.Fprintf(&b, ", by `%s`", res.Actor)
	}
	fmt.Fprintf(&b, ", %ss.\n", formatSeconds(time.Duration(res.Duration)))
	if len(res.Services) > 0 {
		b.WriteString("\n| service | ready | phase | readiness | image |\n|---|---|---|---|---|\n")
		for _, s := range res.Services {
			fmt.Fprintf(&b, "| %s | %d/%d | %s | %s | `%s` |\n", s.Name, s.Ready, s.Desired, s.Phase, dash(s.Readiness), dash(s.Image))
		}
	}
	writeProblems := func(title string, ps []gate.Problem) {
		if len(ps) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n#### %s\n\n| class | service | pod | container | reason | message |\n|---|---|---|---|---|---|\n", title)
		for _, p := range ps {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p.Class, p.Service, dash(p.Pod), dash(p.Container), md(p.Reason), md(p.Message))
		}
		for _, p := range ps {
			if p.Suggestion != "" || len(p.Events) > 0 || len(p.Logs) > 0 {
				fmt.Fprintf(&b, "\n- **%s %s**: %s", p.Service, dash(p.Pod), md(p.Suggestion))
				if len(p.Events) > 0 {
					fmt.Fprintf(&b, " Events: %s", md(strings.Join(p.Events, "; ")))
				}
				if len(p.Logs) > 0 {
					fmt.Fprintf(&b, " Last log lines: %s", md(strings.Join(p.Logs, " ⏎ ")))
				}
			}
		}
		b.WriteString("\n")
	}
	if len(res.Analysis) > 0 {
		b.WriteString("\n#### Metric analysis\n\n| step | service | revision | verdict | requests | 5xx ratio | p95 | beside stable | looks |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, a := range res.Analysis {
			beside := "-"
			if a.Stable != nil {
				beside = stableVs(a)
			}
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s | %s | %s | %d |\n", md(stepName(a)), a.Service, dash(a.Revision), a.Verdict, md(requests(a)),
				md(ratioVs(a.ErrorRatio, a.MaxRatio)), md(p95Vs(a.P95Seconds, a.MaxP95)), md(beside), len(a.Samples))
		}
		for _, a := range res.Analysis {
			if a.Detail != "" {
				fmt.Fprintf(&b, "\n- **%s %s**: %s", md(stepName(a)), a.Service, md(a.Detail))
			}
			if len(a.Samples) > 0 {
				var looks []string
				for _, s := range a.Samples {
					looks = append(looks, fmt.Sprintf("%ss: %.0f req, 5xx %s, p95 %s", formatSeconds(time.Duration(s.Elapsed)), s.Requests, num(s.ErrorRatio), num(s.P95Seconds)))
				}
				fmt.Fprintf(&b, "\n  <details><summary>%s looks</summary>%s</details>", a.Service, md(strings.Join(looks, "<br>")))
			}
		}
		b.WriteString("\n")
	}
	writeProblems("Problems", res.Problems)
	writeProblems("Rollback problems", res.RollbackProblems)
	if len(res.History) > 0 {
		b.WriteString("\n| revision | status | verified | updated | by | images |\n|---|---|---|---|---|---|\n")
		for _, h := range res.History {
			var imgs []string
			for _, svc := range sortedKeys(h.Images) {
				imgs = append(imgs, fmt.Sprintf("%s: `%s`", svc, shortDigest(h.Images[svc])))
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", h.Number, h.Status, yesNo(h.Verified),
				h.Updated.UTC().Format(time.RFC3339), md(author(h)), strings.Join(imgs, "<br>"))
		}
	}
	if len(res.Steps) > 0 {
		b.WriteString("\n<details><summary>steps</summary>\n\n| step | status | time | detail |\n|---|---|---|---|\n")
		for _, s := range res.Steps {
			fmt.Fprintf(&b, "| %s | %s | %ss | %s |\n", s.Name, s.Status, formatSeconds(time.Duration(s.Duration)), md(s.Detail))
		}
		b.WriteString("\n</details>\n")
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "\n> %s\n", md(n))
	}
	if res.Error != "" {
		fmt.Fprintf(&b, "\n```\n%s\n```\n", res.Error)
	}
	_, err := io.WriteString(w, r.String(b.String()))
	return err
}

// stepName is the canary step an analysis judged, or "rollout" for the
// full rollout's.
func stepName(a Analysis) string {
	if a.Step == "" {
		return "rollout"
	}
	return a.Step
}

// stableVs is the stable pods' side of a canary's comparison, e.g.
// "abc123: 300 req, 5xx 0.01 (canary ≤ 0.03), p95 0.02s (canary ≤ 0.04s)".
func stableVs(a Analysis) string {
	st := a.Stable
	return fmt.Sprintf("%s: %.0f req, 5xx %s (canary ≤ %s), p95 %ss (canary ≤ %ss)", dash(st.Revision), st.Requests,
		num(st.ErrorRatio), num(st.MaxRatio), num(st.P95Seconds), num(st.MaxP95))
}

// requests is "120 (min 20)".
func requests(a Analysis) string {
	if a.Verdict == "skipped" {
		return "-"
	}
	return fmt.Sprintf("%.0f (min %.0f)", a.Requests, a.MinRequests)
}

// ratioVs is "0.5 > 0.05", "0 ≤ 0.05" or "- (max 0.05)" without data.
func ratioVs(v *float64, limit float64) string { return vs(v, limit, "") }

func p95Vs(v *float64, limit float64) string { return vs(v, limit, "s") }

func vs(v *float64, limit float64, unit string) string {
	if limit == 0 {
		return "-"
	}
	if v == nil {
		return fmt.Sprintf("- (max %.4g%s)", limit, unit)
	}
	op := "≤"
	if *v > limit {
		op = ">"
	}
	return fmt.Sprintf("%.4g%s %s %.4g%s", *v, unit, op, limit, unit)
}

func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4g", *v)
}

// Outside names, in history, a revision this pipeline did not make.
const Outside = "outside the pipeline"

// author says who made a revision: the pipeline's recorded actor, or that
// it was made outside the pipeline (the helm CLI, say), never a name Helm
// merely copied from an older revision.
func author(h release.Revision) string {
	if h.Outside || h.DeployedBy == "" {
		return Outside
	}
	return h.DeployedBy
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// md makes s safe inside a Markdown table cell.
func md(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func oneLine(s string, max int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}

// shortDigest shortens repo@sha256:<64 hex> to repo@sha256:<12 hex>.
func shortDigest(ref string) string {
	if i := strings.Index(ref, "@sha256:"); i >= 0 && len(ref) > i+8+12 {
		return ref[:i+8+12]
	}
	return ref
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
