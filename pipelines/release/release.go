// Package release runs the Helm SDK for one release in one namespace: apply
// (upgrade --install, never waiting: the gates do that), history with the
// verified mark, rollback to a chosen revision, recovery of a release stuck
// in a pending state, and uninstall. Helm talks to the cluster only through
// the kube.Client it is given.
package release

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// Labels this package keeps on Helm's release Secrets
// (sh.helm.release.v1.<release>.v<revision>). Helm's secrets driver keeps
// custom labels when it rewrites a record (superseded, failed), and copies a
// release's labels onto the next revision at upgrade and rollback. So the
// verified mark holds the revision number it was given for: a copy carried
// onto a later revision does not match that revision and means nothing.
const (
	// LabelVerified is set to the revision's own number once every gate
	// passed for it.
	LabelVerified = "deploy.krgeobuk.dev/verified-revision"
	// LabelVerifiedAt is the Unix time (seconds) the gates passed.
	LabelVerifiedAt = "deploy.krgeobuk.dev/verified-at"
	// LabelDeployedBy is who applied the revision (sanitised to a label value).
	// It only counts together with LabelDeployedRevision: Helm copies both
	// onto revisions it makes by itself (helm rollback, helm upgrade
	// --atomic), and those were not made by the actor named.
	LabelDeployedBy = "deploy.krgeobuk.dev/deployed-by"
	// LabelDeployedRevision is the number of the revision LabelDeployedBy was
	// written for, as LabelVerified is for the verified mark.
	LabelDeployedRevision = "deploy.krgeobuk.dev/deployed-revision"
)

// MaxHistory is how many revisions Helm keeps per release. Helm prunes the
// oldest beyond it (never the deployed one); it is generous so the newest
// verified revision survives a run of failed deploys.
const MaxHistory = 20

// Client runs Helm actions on one release.
type Client struct {
	Name      string
	Namespace string
	// Budgets bound the retries of reads and writes of the release record;
	// New sets budget.Defaults.
	Budgets budget.Budgets
	// Layout reads each revision's images back from its values; New sets
	// values.Apps.
	Layout values.Layout

	kc  *kube.Client
	cfg *action.Configuration
}

// New prepares Helm for the release name in namespace over kc. log receives
// Helm's debug lines; nil discards them.
func New(kc *kube.Client, namespace, name string, log func(format string, args ...any)) (*Client, error) {
	if errs := validName(name); errs != "" {
		return nil, fmt.Errorf("release %q: %s", name, errs)
	}
	if namespace == "" {
		return nil, fmt.Errorf("release %s: no namespace", name)
	}
	if log == nil {
		log = func(string, ...any) {}
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kc.Getter(), namespace, "secret", log); err != nil {
		return nil, fmt.Errorf("release %s: helm: %w", name, err)
	}
	return &Client{Name: name, Namespace: namespace, Budgets: budget.Defaults(), Layout: values.Apps, kc: kc, cfg: cfg}, nil
}

var releaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > 53:
		return "longer than 53 characters"
	case !releaseName.MatchString(name):
		return "must be lower-case letters, digits and '-'"
	}
	return ""
}

// secretName is the Secret Helm's storage driver keeps revision rev in.
func (c *Client) secretName(rev int) string {
	return fmt.Sprintf("sh.helm.release.v1.%s.v%d", c.Name, rev)
}

// ErrNoRelease says the release has no revisions at all.
var ErrNoRelease = errors.New("release has no revisions")

func isNotFound(err error) bool {
	return errors.Is(err, driver.ErrReleaseNotFound) || errors.Is(err, driver.ErrNoDeployedReleases)
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelValue turns an identity such as "ci:github/octo@runner-1" into a
// valid label value ("ci-github-octo-runner-1"): at most 63 characters,
// alphanumeric at both ends.
func LabelValue(s string) string {
	s = labelUnsafe.ReplaceAllString(s, "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-_.")
}
