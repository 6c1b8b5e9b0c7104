// Package environment loads one deployment environment from its folder
// (environments/<name>/ under k8s/): how the pipeline treats it (environment.yaml) and the Helm
// values of each chart. It validates everything it loads, so a typo fails here, before any change.
package environment

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// Dir is the folder, inside the file system given to Load, that holds one folder per environment.
const Dir = "environments"

// File names inside an environment folder.
const (
	SettingsFile         = "environment.yaml"
	AppsValuesFile       = "krgeobuk-apps.values.yaml"
	MonitoringValuesFile = "monitoring-stack.values.yaml"
	KustomizationFile    = "kustomization.yaml"
)

// Gates bounds every wait of a deploy in this environment.
type Gates struct {
	RolloutTimeout     time.Duration
	ReadinessTimeout   time.Duration
	UnschedulableGrace time.Duration
	// ControllerGrace is how long the Deployment controller may leave a new
	// generation unobserved before the rollout gate fails with
	// ControllerNotActing (kube-controller-manager down or without its
	// leader lease). Optional; DefaultControllerGrace when unset.
	ControllerGrace time.Duration
}

// DefaultControllerGrace is gates.controllerGrace when the file sets none.
const DefaultControllerGrace = budget.ControllerGrace

// The bounds of lock.ttl. The lock is renewed every third of it, so a
// holder that dies (killed, its machine gone) blocks other deploys for at
// most the TTL: minutes would block every deploy and rollback for minutes.
// Below the minimum a renewal (every 2s) would hardly outlast a slow API
// round trip.
const (
	MinLockTTL = 6 * time.Second
	MaxLockTTL = 2 * time.Minute
)

// Placement is where a release lives: its namespace and Helm release name.
type Placement struct {
	Namespace string
	Release   string
}

// Environment is one loaded and validated environment.
type Environment struct {
	Name      string
	Namespace string
	// Release is the Helm release name of the umbrella chart.
	Release string
	// Monitoring is where the monitoring stack's release lives; nil when
	// environment.yaml has no monitoring: block (the stack is then not
	// deployed by the pipeline in this environment).
	Monitoring *Placement
	Gates      Gates
	// LockTTL is how long a deploy lock lives without renewal before it counts as stale.
	LockTTL time.Duration
	// Budgets bound every retry outside the gates: budget.Defaults with the
	// environment's budgets: overrides laid over them.
	Budgets budget.Budgets
	// Values are the krgeobuk-apps values of this environment (chart defaults not merged in).
	Values map[string]any
	// MonitoringValues are the monitoring-stack values, nil when the file is absent.
	MonitoringValues map[string]any
	// Analysis is the metric analysis window after the readiness gate; nil
	// (no analysis: block) turns it off.
	Analysis *Analysis
	// Signing says whether the images deployed here must be signed, and
	// with which keys; nil (no signing: block) requires nothing.
	Signing *Signing
}

// Signing is the signature an image must carry to be deployed here.
type Signing struct {
	// Required refuses, at preflight, an image without a signature that
	// verifies with one of Keys, or without an SBOM.
	Required bool
	// Keys are the accepted public keys (PEM), read from files beside
	// environment.yaml: one, or two while a key is being rotated.
	Keys []PublicKey
}

// PublicKey is one accepted signing key.
type PublicKey struct {
	// File is its file name beside environment.yaml.
	File string
	PEM  []byte
}

// MaxSigningKeys is how many keys an environment may accept at once: the
// current one and, during a rotation, the next.
const MaxSigningKeys = 2

// Analysis is how long, how often and against which thresholds a deploy
// watches a new revision's request metrics before it is verified.
type Analysis struct {
	// Duration is the window the new revision is watched for.
	Duration time.Duration
	// Interval is how often Prometheus is asked; a breach ends the window at once.
	Interval time.Duration
	// MinRequests is how many requests the revision must serve in the
	// window; fewer is "no data", a failure of its own.
	MinRequests int
	// MaxErrorRatio and MaxP95 are the thresholds; zero means the
	// environment's monitoring alerts' (metricgate.ForEnvironment).
	MaxErrorRatio float64
	MaxP95        time.Duration
	// Canary, when set, runs a new image first beside the stable revision,
	// step by step, each step analysed; nil deploys at once.
	Canary *Canary
}

// Canary is the steps a new image takes beside the stable revision before
// it replaces it, and how far it may fall behind the stable pods' numbers.
type Canary struct {
	// Steps are the canary's sizes, in order; the full rollout follows the
	// last one.
	Steps []CanaryStep
	// MaxRatioIncrease is how far the canary's 5xx ratio may exceed the
	// stable pods' (absolute).
	MaxRatioIncrease float64
	// MaxP95Factor is how many times the stable pods' p95 the canary's may be.
	MaxP95Factor float64
}

// CanaryStep is one canary size: Pods pods, or Percent per cent of the
// stable Deployment's replicas (rounded up, at least one pod).
type CanaryStep struct {
	Pods    int
	Percent int
}

// Replicas is the step's canary pods beside stable stable pods.
func (c CanaryStep) Replicas(stable int) int {
	if c.Pods > 0 {
		return c.Pods
	}
	return max(1, (c.Percent*stable+99)/100)
}

func (c CanaryStep) String() string {
	if c.Pods > 0 {
		return strconv.Itoa(c.Pods)
	}
	return strconv.Itoa(c.Percent) + "%"
}

type settings struct {
	Name       string `json:"name"`
	Namespace  string `json:"namespace"`
	Release    string `json:"release"`
	Monitoring *struct {
		Namespace string `json:"namespace"`
		Release   string `json:"release"`
	} `json:"monitoring"`
	Gates struct {
		RolloutTimeout     duration `json:"rolloutTimeout"`
		ReadinessTimeout   duration `json:"readinessTimeout"`
		UnschedulableGrace duration `json:"unschedulableGrace"`
		ControllerGrace    duration `json:"controllerGrace"`
	} `json:"gates"`
	Lock struct {
		TTL duration `json:"ttl"`
	} `json:"lock"`
	Analysis *struct {
		Duration      duration `json:"duration"`
		Interval      duration `json:"interval"`
		MinRequests   *int     `json:"minRequests"`
		MaxErrorRatio *float64 `json:"maxErrorRatio"`
		MaxP95        duration `json:"maxP95"`
		Canary        *struct {
			Steps            []canaryStep `json:"steps"`
			MaxRatioIncrease *float64     `json:"maxRatioIncrease"`
			MaxP95Factor     *float64     `json:"maxP95Factor"`
		} `json:"canary"`
	} `json:"analysis"`
	Signing *struct {
		Required bool     `json:"required"`
		Keys     []string `json:"keys"`
	} `json:"signing"`
	Budgets struct {
		APIRead           duration `json:"apiRead"`
		APIWrite          duration `json:"apiWrite"`
		DryRun            duration `json:"dryRun"`
		Lock              duration `json:"lock"`
		Cleanup           duration `json:"cleanup"`
		Registry          duration `json:"registry"`
		Copy              duration `json:"copy"`
		ReadinessInterval duration `json:"readinessInterval"`
	} `json:"budgets"`
}

// budgets lays the file's overrides over budget.Defaults.
func (s settings) budgets() budget.Budgets {
	b := s.Budgets
	return budget.Defaults().Over(budget.Budgets{
		APIRead: b.APIRead.Duration, APIWrite: b.APIWrite.Duration, DryRun: b.DryRun.Duration, Lock: b.Lock.Duration,
		Cleanup: b.Cleanup.Duration, Registry: b.Registry.Duration, Copy: b.Copy.Duration, ReadinessInterval: b.ReadinessInterval.Duration,
	})
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90s\" or \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

var (
	namePattern  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	releaseLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$`)
)

// Names lists the environments found in fsys, sorted.
func Names(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, Dir)
	if err != nil {
		return nil, fmt.Errorf("environments: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Load reads environments/<name>/ from fsys. An unknown name, an unknown or missing field, or a
// value out of range is an error naming the file.
func Load(fsys fs.FS, name string) (*Environment, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("environment %q: not a valid environment name", name)
	}
	dir := path.Join(Dir, name)
	if _, err := fs.Stat(fsys, dir); err != nil {
		known, _ := Names(fsys)
		return nil, fmt.Errorf("environment %q: unknown (known: %v)", name, known)
	}
	var s settings
	if err := readYAML(fsys, path.Join(dir, SettingsFile), &s, true); err != nil {
		return nil, err
	}
	if err := s.validate(name); err != nil {
		return nil, fmt.Errorf("environment %s: %s: %w", name, SettingsFile, err)
	}
	if s.Gates.ControllerGrace.Duration == 0 {
		s.Gates.ControllerGrace.Duration = DefaultControllerGrace
	}
	env := &Environment{
		Name:      s.Name,
		Namespace: s.Namespace,
		Release:   s.Release,
		Gates: Gates{
			RolloutTimeout:     s.Gates.RolloutTimeout.Duration,
			ReadinessTimeout:   s.Gates.ReadinessTimeout.Duration,
			UnschedulableGrace: s.Gates.UnschedulableGrace.Duration,
			ControllerGrace:    s.Gates.ControllerGrace.Duration,
		},
		LockTTL: s.Lock.TTL.Duration,
		Budgets: s.budgets(),
	}
	if m := s.Monitoring; m != nil {
		env.Monitoring = &Placement{Namespace: m.Namespace, Release: m.Release}
	}
	if a := s.Analysis; a != nil {
		env.Analysis = &Analysis{Duration: a.Duration.Duration, Interval: a.Interval.Duration, MinRequests: *a.MinRequests, MaxP95: a.MaxP95.Duration}
		if a.MaxErrorRatio != nil {
			env.Analysis.MaxErrorRatio = *a.MaxErrorRatio
		}
		if c := a.Canary; c != nil {
			env.Analysis.Canary = &Canary{MaxRatioIncrease: *c.MaxRatioIncrease, MaxP95Factor: *c.MaxP95Factor}
			for _, st := range c.Steps {
				env.Analysis.Canary.Steps = append(env.Analysis.Canary.Steps, CanaryStep{Pods: st.Pods, Percent: st.Percent})
			}
		}
	}
	if sg := s.Signing; sg != nil {
		env.Signing = &Signing{Required: sg.Required}
		var errs []error
		for _, f := range sg.Keys {
			k, err := readKey(fsys, dir, f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			env.Signing.Keys = append(env.Signing.Keys, k)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("environment %s: %s: %w", name, SettingsFile, err)
		}
	}
	if err := readYAML(fsys, path.Join(dir, AppsValuesFile), &env.Values, false); err != nil {
		return nil, err
	}
	if env.Values == nil {
		return nil, fmt.Errorf("environment %s: %s is empty", name, AppsValuesFile)
	}
	err := readYAML(fsys, path.Join(dir, MonitoringValuesFile), &env.MonitoringValues, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return env, nil
}

func (s settings) validate(folder string) error {
	var errs []error
	if s.Name != folder {
		errs = append(errs, fmt.Errorf("name %q does not match its folder %q", s.Name, folder))
	}
	if !dnsLabel.MatchString(s.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q is not a DNS label", s.Namespace))
	}
	if !releaseLabel.MatchString(s.Release) {
		errs = append(errs, fmt.Errorf("release %q is not a valid Helm release name", s.Release))
	}
	if m := s.Monitoring; m != nil {
		if !dnsLabel.MatchString(m.Namespace) {
			errs = append(errs, fmt.Errorf("monitoring.namespace %q is not a DNS label", m.Namespace))
		}
		if !releaseLabel.MatchString(m.Release) {
			errs = append(errs, fmt.Errorf("monitoring.release %q is not a valid Helm release name", m.Release))
		}
		if m.Namespace == s.Namespace && m.Release == s.Release {
			errs = append(errs, fmt.Errorf("monitoring.release %q in namespace %q is the apps' release: the two stacks are separate releases", m.Release, m.Namespace))
		}
	}
	for field, d := range map[string]time.Duration{
		"gates.rolloutTimeout":     s.Gates.RolloutTimeout.Duration,
		"gates.readinessTimeout":   s.Gates.ReadinessTimeout.Duration,
		"gates.unschedulableGrace": s.Gates.UnschedulableGrace.Duration,
		"lock.ttl":                 s.Lock.TTL.Duration,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration", field))
		}
	}
	b := s.Budgets
	for field, d := range map[string]time.Duration{
		"budgets.apiRead": b.APIRead.Duration, "budgets.apiWrite": b.APIWrite.Duration, "budgets.dryRun": b.DryRun.Duration,
		"budgets.lock": b.Lock.Duration, "budgets.cleanup": b.Cleanup.Duration, "budgets.registry": b.Registry.Duration, "budgets.copy": b.Copy.Duration,
		"budgets.readinessInterval": b.ReadinessInterval.Duration,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (leave it out for the default)", field))
		}
	}
	if d := s.Gates.ControllerGrace.Duration; d < 0 {
		errs = append(errs, fmt.Errorf("gates.controllerGrace must be a positive duration (or unset: %s)", DefaultControllerGrace))
	}
	if d := s.Lock.TTL.Duration; d > 0 && (d < MinLockTTL || d > MaxLockTTL) {
		errs = append(errs, fmt.Errorf("lock.ttl %s is outside %s..%s: the lock is renewed every third of it, and a deploy that dies blocks the next for as long", d, MinLockTTL, MaxLockTTL))
	}
	errs = append(errs, s.validateAnalysis()...)
	errs = append(errs, s.validateSigning()...)
	sortErrors(errs)
	return errors.Join(errs...)
}

func (s settings) validateSigning() []error {
	sg := s.Signing
	if sg == nil {
		return nil
	}
	var errs []error
	switch {
	case sg.Required && len(sg.Keys) == 0:
		errs = append(errs, errors.New("signing.required needs at least one public key under signing.keys (a PEM file beside environment.yaml)"))
	case len(sg.Keys) > MaxSigningKeys:
		errs = append(errs, fmt.Errorf("signing.keys lists %d keys, at most %d: the current key and, while rotating, the next", len(sg.Keys), MaxSigningKeys))
	}
	seen := map[string]bool{}
	for _, f := range sg.Keys {
		if f == "" || f != path.Base(f) || strings.HasPrefix(f, ".") {
			errs = append(errs, fmt.Errorf("signing.keys: %q must be a file name beside environment.yaml", f))
		}
		if seen[f] {
			errs = append(errs, fmt.Errorf("signing.keys: %q is listed twice", f))
		}
		seen[f] = true
	}
	return errs
}

// readKey reads one accepted public key beside environment.yaml.
func readKey(fsys fs.FS, dir, file string) (PublicKey, error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, file))
	if err != nil {
		return PublicKey{}, fmt.Errorf("signing.keys: %w", err)
	}
	k, err := ParsePublicKey(file, data)
	if err != nil {
		return PublicKey{}, fmt.Errorf("signing.keys: %w", err)
	}
	return k, nil
}

// ParsePublicKey checks that data is one PEM public key, named file in
// messages: a private key given by mistake is refused without being echoed.
func ParsePublicKey(file string, data []byte) (PublicKey, error) {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return PublicKey{}, fmt.Errorf("%s is not PEM", file)
	case strings.Contains(block.Type, "PRIVATE"):
		return PublicKey{}, fmt.Errorf("%s holds a private key (%s): only the public key belongs here; remove it from the repository and rotate it", file, block.Type)
	case block.Type != "PUBLIC KEY":
		return PublicKey{}, fmt.Errorf("%s is a PEM %q, want \"PUBLIC KEY\"", file, block.Type)
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return PublicKey{}, fmt.Errorf("%s: %w", file, err)
	}
	return PublicKey{File: file, PEM: data}, nil
}

// MaxAnalysisDuration bounds analysis.duration: the deploy lock is held
// for the whole window, so every other deploy and rollback waits as long.
const MaxAnalysisDuration = 30 * time.Minute

func (s settings) validateAnalysis() []error {
	a := s.Analysis
	if a == nil {
		return nil
	}
	var errs []error
	d, i := a.Duration.Duration, a.Interval.Duration
	switch {
	case d <= 0:
		errs = append(errs, errors.New("analysis.duration must be a positive duration"))
	case d > MaxAnalysisDuration:
		errs = append(errs, fmt.Errorf("analysis.duration %s is longer than %s: the deploy lock is held for the whole window", d, MaxAnalysisDuration))
	}
	switch {
	case i < time.Second:
		errs = append(errs, fmt.Errorf("analysis.interval %s must be at least 1s", i))
	case d > 0 && i >= d:
		errs = append(errs, fmt.Errorf("analysis.interval %s must be shorter than analysis.duration %s, or the window holds a single look", i, d))
	}
	if a.MinRequests == nil || *a.MinRequests < 1 {
		errs = append(errs, errors.New("analysis.minRequests must be at least 1: a window with no traffic proves nothing"))
	}
	if r := a.MaxErrorRatio; r != nil && !(*r > 0 && *r <= 1) {
		errs = append(errs, fmt.Errorf("analysis.maxErrorRatio %v must be in (0, 1] (leave it out for the monitoring alert's)", *r))
	}
	if a.MaxP95.Duration < 0 {
		errs = append(errs, errors.New("analysis.maxP95 must be a positive duration (leave it out for the monitoring alert's)"))
	}
	if c := a.Canary; c != nil {
		errs = append(errs, validateCanary(c.Steps, c.MaxRatioIncrease, c.MaxP95Factor)...)
	}
	return errs
}

func validateCanary(steps []canaryStep, ratio, factor *float64) []error {
	var errs []error
	if len(steps) == 0 {
		errs = append(errs, errors.New("analysis.canary.steps must list at least one step (a pod count such as 1, or a share such as 50%)"))
	}
	for i, st := range steps {
		switch {
		case st.err != nil:
			errs = append(errs, fmt.Errorf("analysis.canary.steps[%d]: %w", i, st.err))
		case st.Pods < 0 || st.Percent < 0 || (st.Pods == 0 && st.Percent == 0):
			errs = append(errs, fmt.Errorf("analysis.canary.steps[%d] must be at least one pod or a share above 0%%", i))
		case st.Percent > 100:
			errs = append(errs, fmt.Errorf("analysis.canary.steps[%d] %d%% is more than the stable pods: the full rollout follows the last step anyway", i, st.Percent))
		}
	}
	if ratio == nil || !(*ratio >= 0 && *ratio < 1) {
		errs = append(errs, errors.New("analysis.canary.maxRatioIncrease must be set, in [0, 1): how far the canary's 5xx ratio may exceed the stable pods'"))
	}
	if factor == nil || !(*factor >= 1) {
		errs = append(errs, errors.New("analysis.canary.maxP95Factor must be set, at least 1: how many times the stable pods' p95 the canary's may be"))
	}
	return errs
}

// canaryStep is a step as environment.yaml writes it: a pod count (1) or a
// share of the stable replicas ("50%"). A step that does not parse keeps
// its error for validate, which reports every problem of the file at once.
type canaryStep struct {
	Pods    int
	Percent int
	err     error
}

func (c *canaryStep) UnmarshalJSON(b []byte) error {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			c.err = fmt.Errorf("%v is not a whole number of pods", x)
		}
		c.Pods = int(x)
	case string:
		n, err := strconv.Atoi(strings.TrimSuffix(x, "%"))
		if err != nil || !strings.HasSuffix(x, "%") {
			c.err = fmt.Errorf("%q is neither a pod count nor a share such as \"50%%\"", x)
			return nil
		}
		c.Percent = n
	default:
		c.err = fmt.Errorf("%v is neither a pod count nor a share such as \"50%%\"", v)
	}
	return nil
}

func sortErrors(errs []error) {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

func readYAML(fsys fs.FS, file string, into any, strict bool) error {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return fmt.Errorf("environment file %s: %w", file, err)
	}
	if strict {
		err = yaml.UnmarshalStrict(data, into)
	} else {
		err = yaml.Unmarshal(data, into)
	}
	if err != nil {
		return fmt.Errorf("environment file %s: %w", file, err)
	}
	return nil
}
