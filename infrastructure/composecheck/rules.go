package composecheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Rule names, as they appear in violations.
const (
	RuleHealthcheck = "healthcheck"   // every service has an enabled health check
	RuleRestart     = "restart"       // long-running services restart unless stopped
	RuleLimits      = "limits"        // every service has CPU and memory limits
	RuleDataVolume  = "data-volume"   // stores keep data in a named volume
	RulePorts       = "ports"         // stores and exporters publish their catalog ports, nothing else is exposed
	RuleImagePinned = "image-pinned"  // images name an exact version or a digest
	RuleCredentials = "credentials"   // credentials come from ${VAR} or secret files, never literals or argv
	RuleRedisAuth   = "redis-auth"    // Redis gets requirepass from a secret
	RuleRedisAOF    = "redis-aof"     // Redis runs with appendonly yes
	RuleStores      = "catalog-store" // every catalog store has a service
)

// Exporter ports the monitoring chart scrapes on the data server.
var ExporterPorts = map[string]int{
	"node-exporter":   9100,
	"mysqld-exporter": 9104,
	"redis-exporter":  9121,
}

// dataDirs is where each engine's image keeps its data.
var dataDirs = map[string]string{"mysql": "/var/lib/mysql", "redis": "/data"}

// Violation is one broken rule.
type Violation struct {
	Rule    string
	Service string
	Message string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: service %s: %s", v.Rule, v.Service, v.Message)
}

// Check applies every rule to in. The result is sorted by service, then rule.
// requireAllStores demands a service for every catalog store (the full stack);
// a single file only needs its own stores to be right.
func Check(in *Input, requireAllStores bool) []Violation {
	var out []Violation
	add := func(rule, svc, format string, args ...any) {
		out = append(out, Violation{Rule: rule, Service: svc, Message: fmt.Sprintf(format, args...)})
	}
	stores := map[string]catalog.DataStore{}
	for _, s := range catalog.Stores() {
		stores[s.Name] = s
		if _, ok := in.Project.Services[s.Name]; !ok && requireAllStores {
			add(RuleStores, s.Name, "catalog store has no compose service in %v", in.Files)
		}
	}
	for name, svc := range in.Project.Services {
		raw := in.Raw.Services[name]
		checkHealth(add, name, svc)
		checkRestart(add, name, svc)
		checkLimits(add, name, svc)
		checkImage(add, name, svc)
		checkCredentials(add, name, raw)
		if st, ok := stores[name]; ok {
			checkDataVolume(add, name, svc, st, in.Project)
			checkStorePorts(add, name, svc, st)
			if st.Engine == "redis" {
				checkRedis(add, name, svc, in.Dir)
			}
		} else if port, ok := ExporterPorts[name]; ok {
			checkExporterPort(add, name, svc, port)
		} else {
			checkOtherPorts(add, name, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Message < out[j].Message
	})
	return out
}

type adder func(rule, svc, format string, args ...any)

func checkHealth(add adder, name string, svc types.ServiceConfig) {
	hc := svc.HealthCheck
	switch {
	case hc == nil:
		add(RuleHealthcheck, name, "no healthcheck")
	case hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE":
		add(RuleHealthcheck, name, "healthcheck is disabled")
	}
}

func checkRestart(add adder, name string, svc types.ServiceConfig) {
	switch {
	case svc.Restart == "":
		add(RuleRestart, name, "no restart policy")
	case len(svc.Profiles) > 0:
		// a profiled service is a job-scoped helper (scratch server): any
		// explicit policy is a decision, "no" included
	case svc.Restart != types.RestartPolicyUnlessStopped && svc.Restart != types.RestartPolicyAlways:
		add(RuleRestart, name, "restart is %q; a long-running service needs unless-stopped or always", svc.Restart)
	}
}

func checkLimits(add adder, name string, svc types.ServiceConfig) {
	var lim *types.Resource
	if svc.Deploy != nil {
		lim = svc.Deploy.Resources.Limits
	}
	if lim == nil {
		add(RuleLimits, name, "no deploy.resources.limits")
		return
	}
	if lim.MemoryBytes <= 0 {
		add(RuleLimits, name, "no memory limit")
	}
	if lim.NanoCPUs <= 0 {
		add(RuleLimits, name, "no cpus limit")
	}
}

var (
	exactTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-.+][A-Za-z0-9.-]+)?$`)
	digest   = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

func checkImage(add adder, name string, svc types.ServiceConfig) {
	img := svc.Image
	if img == "" {
		add(RuleImagePinned, name, "no image (builds are not allowed on the data server)")
		return
	}
	if digest.MatchString(img) {
		return
	}
	ref := img
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	tag := ""
	if i := strings.LastIndex(ref, ":"); i >= 0 {
		tag = ref[i+1:]
	}
	if !exactTag.MatchString(tag) {
		add(RuleImagePinned, name, "image %q is not pinned: use an exact version tag (x.y.z) or a @sha256 digest", img)
	}
}

var (
	credentialKey = regexp.MustCompile(`(?i)(pass|secret|token|credential|api_?key|private_?key)`)
	varRef        = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$`)
	argvSecret    = regexp.MustCompile(`(?i)(--password|--requirepass|^requirepass|\brequirepass\s|--pass=|^-p\S+)`)
)

func checkCredentials(add adder, name string, raw types.ServiceConfig) {
	keys := make([]string, 0, len(raw.Environment))
	for k := range raw.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw.Environment[k]
		if !credentialKey.MatchString(k) || v == nil {
			continue
		}
		if strings.HasSuffix(k, "_FILE") {
			if !strings.HasPrefix(*v, "/run/secrets/") {
				add(RuleCredentials, name, "environment %s points at %q, not a compose secret under /run/secrets/", k, *v)
			}
			continue
		}
		if !varRef.MatchString(*v) {
			add(RuleCredentials, name, "environment %s holds a literal value; use a ${VAR} reference or a *_FILE secret", k)
		}
	}
	argv := map[string][]string{"command": raw.Command, "entrypoint": raw.Entrypoint}
	if raw.HealthCheck != nil {
		argv["healthcheck"] = raw.HealthCheck.Test
	}
	for _, field := range []string{"command", "entrypoint", "healthcheck"} {
		for _, a := range argv[field] {
			if argvSecret.MatchString(a) {
				add(RuleCredentials, name, "%s argument %q passes a credential on the command line, where ps shows it", field, a)
			}
		}
	}
}

func checkDataVolume(add adder, name string, svc types.ServiceConfig, st catalog.DataStore, p *types.Project) {
	want := dataDirs[st.Engine]
	for _, v := range svc.Volumes {
		if v.Target != want {
			continue
		}
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			add(RuleDataVolume, name, "%s is a %s mount; data needs a named volume", want, v.Type)
			return
		}
		if _, ok := p.Volumes[v.Source]; !ok {
			add(RuleDataVolume, name, "volume %q is not declared under top-level volumes", v.Source)
		}
		return
	}
	add(RuleDataVolume, name, "no named volume at %s: data would live in the container and die with it", want)
}

func published(pc types.ServicePortConfig) int {
	n, err := strconv.Atoi(pc.Published)
	if err != nil {
		return -1
	}
	return n
}

func checkStorePorts(add adder, name string, svc types.ServiceConfig, st catalog.DataStore) {
	if len(svc.Ports) != 1 || published(svc.Ports[0]) != st.Port || int(svc.Ports[0].Target) != st.Port {
		add(RulePorts, name, "must publish exactly %d:%d (catalog port, same inside and out), has %s", st.Port, st.Port, portList(svc.Ports))
	}
	checkListen(add, name, svc, st.Port)
}

// checkListen checks that a store's server really listens on the port
// published, since the images default to 3306/6379.
func checkListen(add adder, name string, svc types.ServiceConfig, port int) {
	p := strconv.Itoa(port)
	for _, a := range svc.Command {
		if a == "--port="+p {
			return
		}
	}
	for k, v := range svc.Environment {
		if strings.HasSuffix(k, "_PORT") && v != nil && *v == p {
			return
		}
	}
	add(RulePorts, name, "server is not told to listen on %s (--port=%s in command or *_PORT=%s in environment)", p, p, p)
}

func checkExporterPort(add adder, name string, svc types.ServiceConfig, port int) {
	if svc.NetworkMode == "host" {
		for _, a := range svc.Command {
			if a == fmt.Sprintf("--web.listen-address=:%d", port) {
				return
			}
		}
		add(RulePorts, name, "host-network exporter must listen with --web.listen-address=:%d", port)
		return
	}
	if len(svc.Ports) != 1 || published(svc.Ports[0]) != port || int(svc.Ports[0].Target) != port {
		add(RulePorts, name, "must publish exactly %d:%d, has %s", port, port, portList(svc.Ports))
	}
}

// checkOtherPorts keeps any other service off the network: the firewall
// only knows the store and exporter ports.
func checkOtherPorts(add adder, name string, svc types.ServiceConfig) {
	for _, pc := range svc.Ports {
		if pc.HostIP != "127.0.0.1" {
			add(RulePorts, name, "publishes %s on %q; services outside the catalog may only publish on 127.0.0.1", pc.Published, pc.HostIP)
		}
	}
}

func portList(ps []types.ServicePortConfig) string {
	if len(ps) == 0 {
		return "none"
	}
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s:%s:%d", p.HostIP, p.Published, p.Target))
	}
	return strings.Join(s, ", ")
}

func checkRedis(add adder, name string, svc types.ServiceConfig, dir string) {
	pwFile := svc.Environment["REDIS_PASSWORD_FILE"]
	switch {
	case pwFile == nil || !strings.HasPrefix(*pwFile, "/run/secrets/"):
		add(RuleRedisAuth, name, "REDIS_PASSWORD_FILE must name a compose secret under /run/secrets/ (requirepass comes from it)")
	default:
		secret := strings.TrimPrefix(*pwFile, "/run/secrets/")
		found := false
		for _, s := range svc.Secrets {
			found = found || s.Source == secret
		}
		if !found {
			add(RuleRedisAuth, name, "REDIS_PASSWORD_FILE names secret %q, which the service does not mount", secret)
		}
	}
	if len(svc.Entrypoint) < 2 || filepath.Base(svc.Entrypoint[len(svc.Entrypoint)-1]) != "redis-entrypoint.sh" {
		add(RuleRedisAuth, name, "entrypoint must be redis-entrypoint.sh, which refuses to start without a password")
	}
	conf := ""
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == "/usr/local/etc/redis" {
			conf = filepath.Join(v.Source, "redis.conf")
		}
	}
	if conf == "" {
		add(RuleRedisAOF, name, "no redis.conf mounted at /usr/local/etc/redis")
		return
	}
	if !filepath.IsAbs(conf) {
		conf = filepath.Join(dir, conf)
	}
	val, err := redisDirective(conf, "appendonly")
	switch {
	case err != nil:
		add(RuleRedisAOF, name, "read %s: %v", conf, err)
	case val != "yes":
		add(RuleRedisAOF, name, "%s sets appendonly %q, want \"yes\"", filepath.Base(conf), val)
	}
}

// redisDirective returns the last value of a directive in a redis.conf, as
// Redis applies the last one.
func redisDirective(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	val := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && strings.EqualFold(fields[0], key) {
			val = strings.Trim(fields[1], `"`)
		}
	}
	return val, sc.Err()
}
