// Package appenv computes the environment a service's container receives in
// one deployment environment, from the umbrella chart rendered exactly as a
// deploy would render it. Integration tests (the Dagger function and the local
// test of the example API) use it, so a test sees the keys production sees:
// the data of the ConfigMaps and the keys of the Secrets that the service's
// Deployment pulls in with envFrom, and nothing else.
package appenv

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// SecretSource is the environment whose values make the chart render the
// APIs' Secrets (from throwaway literals). Everywhere else the Secret is
// created out of band with the same keys, so its key set is learnt there.
const SecretSource = "development"

// Source is what appenv renders: the umbrella chart, the environment asked
// about, and the environment that renders the APIs' Secrets (SecretSource).
type Source struct {
	Chart   *chart.Chart
	Env     *environment.Environment
	Secrets *environment.Environment
}

// EmbeddedSource is the Source for environment env built from the chart and
// environment folders embedded in this binary, as the doors deploy them.
func EmbeddedSource(env string) (Source, error) {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	if err != nil {
		return Source{}, fmt.Errorf("appenv: %w", err)
	}
	e, err := environment.Load(k8s.Environments, env)
	if err != nil {
		return Source{}, fmt.Errorf("appenv: %w", err)
	}
	sec, err := environment.Load(k8s.Environments, SecretSource)
	if err != nil {
		return Source{}, fmt.Errorf("appenv: %w", err)
	}
	return Source{Chart: ch, Env: e, Secrets: sec}, nil
}

// ServiceEnv is the environment of one service's main container.
type ServiceEnv struct {
	Environment string
	Service     string
	// ConfigMap names the ConfigMap the container reads, "" when none.
	ConfigMap string
	// Config is that ConfigMap's data after overrides.
	Config map[string]string
	// Secrets name the Secrets the container reads, in envFrom order: an
	// API's credentials Secret, then its JWT Secret.
	Secrets []string
	// SecretKeys are the keys those Secrets provide, sorted. Their values
	// never pass through this package.
	SecretKeys []string
}

// Keys lists every variable the container receives, sorted.
func (e *ServiceEnv) Keys() []string {
	out := slices.Collect(maps.Keys(e.Config))
	out = append(out, e.SecretKeys...)
	sort.Strings(out)
	return out
}

// ForService renders the chart for environment env and returns what the
// service's main container receives. overrides replace config values (for
// example MYSQL_HOST pointing at a local server); an override of a key the
// chart does not provide, or of a Secret key, is an error, so a test can never
// invent a variable production lacks.
func ForService(ctx context.Context, src Source, service string, overrides map[string]string) (*ServiceEnv, error) {
	if _, err := catalog.Lookup(service); err != nil {
		return nil, fmt.Errorf("appenv: %w", err)
	}
	res, err := Render(ctx, src.Chart, src.Env)
	if err != nil {
		return nil, err
	}
	out, err := fromObjects(res.Objects, src.Env.Name, service)
	if err != nil {
		return nil, err
	}
	if len(out.Secrets) > 0 {
		keys, err := secretKeys(ctx, src, service, out.Secrets)
		if err != nil {
			return nil, err
		}
		out.SecretKeys = keys
	}
	if err := out.apply(overrides); err != nil {
		return nil, err
	}
	return out, nil
}

// NginxConf returns the nginx.conf the chart mounts into an SPA's container
// in environment env, so images built for it serve the same configuration.
func NginxConf(ctx context.Context, src Source, service string) (string, error) {
	s, err := catalog.Lookup(service)
	if err != nil {
		return "", fmt.Errorf("appenv: %w", err)
	}
	if s.IsAPI() {
		return "", fmt.Errorf("appenv: service %s is an API; only SPAs have an nginx.conf", service)
	}
	res, err := Render(ctx, src.Chart, src.Env)
	if err != nil {
		return "", err
	}
	env := src.Env.Name
	name := service + "-nginx"
	for _, o := range res.Objects {
		if cm, ok := o.Typed.(*corev1.ConfigMap); ok && cm.Name == name {
			conf, ok := cm.Data["nginx.conf"]
			if !ok {
				return "", fmt.Errorf("appenv: environment %s: ConfigMap %s has no nginx.conf", env, name)
			}
			return conf, nil
		}
	}
	return "", fmt.Errorf("appenv: environment %s: the chart renders no ConfigMap %s", env, name)
}

// Render renders chart ch with environment env's values, as a deploy
// would, with a stand-in digest for every image (environments that demand
// digests refuse to render without one; which digest does not change any
// environment variable).
func Render(ctx context.Context, ch *chart.Chart, env *environment.Environment) (*render.Result, error) {
	if ch == nil || env == nil {
		return nil, fmt.Errorf("appenv: a chart and an environment are required")
	}
	res, err := render.Render(ctx, render.Request{Chart: ch, Release: env.Release, Namespace: env.Namespace, Values: values.StandInPins(env.Values)})
	if err != nil {
		return nil, fmt.Errorf("appenv: environment %s: %w", env.Name, err)
	}
	return res, nil
}

// fromObjects follows the service Deployment's main container: its envFrom
// references and literal env entries.
func fromObjects(objs []render.Object, env, service string) (*ServiceEnv, error) {
	var dep *appsv1.Deployment
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			if t.Name == service {
				dep = t
			}
		case *corev1.ConfigMap:
			configMaps[t.Name] = t
		}
	}
	if dep == nil {
		return nil, fmt.Errorf("appenv: environment %s: the chart renders no Deployment %s (is the service enabled?)", env, service)
	}
	var ctr *corev1.Container
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == service {
			ctr = c
		}
	}
	if ctr == nil {
		return nil, fmt.Errorf("appenv: environment %s: Deployment %s has no container named %s", env, service, service)
	}
	out := &ServiceEnv{Environment: env, Service: service, Config: map[string]string{}}
	for _, src := range ctr.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			if out.ConfigMap != "" {
				return nil, fmt.Errorf("appenv: Deployment %s reads two ConfigMaps (%s, %s); appenv expects one", service, out.ConfigMap, src.ConfigMapRef.Name)
			}
			cm, ok := configMaps[src.ConfigMapRef.Name]
			if !ok {
				return nil, fmt.Errorf("appenv: environment %s: Deployment %s reads ConfigMap %s, which the chart does not render", env, service, src.ConfigMapRef.Name)
			}
			out.ConfigMap = cm.Name
			for k, v := range cm.Data {
				out.Config[src.Prefix+k] = v
			}
		case src.SecretRef != nil:
			if src.Prefix != "" {
				return nil, fmt.Errorf("appenv: Deployment %s: a prefix on Secret %s is not supported", service, src.SecretRef.Name)
			}
			out.Secrets = append(out.Secrets, src.SecretRef.Name)
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil {
			return nil, fmt.Errorf("appenv: Deployment %s: env %s comes from a reference appenv cannot follow", service, e.Name)
		}
		out.Config[e.Name] = e.Value
	}
	return out, nil
}

// secretKeys lists the keys of the Secrets the service reads in src.Env.
// The JWT Secret is never rendered, so its keys are the catalog's; the
// credentials Secret's keys are learnt from the chart, rendered where it
// renders that Secret (src.Secrets). Any other Secret is an error: appenv
// could not know its keys.
func secretKeys(ctx context.Context, src Source, service string, secrets []string) ([]string, error) {
	jwtName, err := values.JWTSecret(src.Chart, src.Env.Values, service)
	if err != nil {
		return nil, fmt.Errorf("appenv: environment %s: %w", src.Env.Name, err)
	}
	var keys []string
	others := 0
	for _, name := range secrets {
		if name == jwtName {
			keys = append(keys, catalog.JWTKeys()...)
		} else {
			others++
		}
	}
	if others > 1 {
		return nil, fmt.Errorf("appenv: environment %s: Deployment %s reads Secrets %s; appenv knows the keys of one credentials Secret and the JWT Secret %s", src.Env.Name, service, strings.Join(secrets, ", "), jwtName)
	}
	if others == 1 {
		creds, err := credentialKeys(ctx, src, service)
		if err != nil {
			return nil, err
		}
		keys = append(keys, creds...)
	}
	sort.Strings(keys)
	return slices.Compact(keys), nil
}

// credentialKeys learns the keys of the service's credentials Secret from
// the chart rendered for src.Secrets, the environment that renders it.
func credentialKeys(ctx context.Context, src Source, service string) ([]string, error) {
	res, err := Render(ctx, src.Chart, src.Secrets)
	if err != nil {
		return nil, err
	}
	dev, err := fromObjects(res.Objects, src.Secrets.Name, service)
	if err != nil {
		return nil, err
	}
	rendered := map[string]*corev1.Secret{}
	for _, o := range res.Objects {
		if s, ok := o.Typed.(*corev1.Secret); ok {
			rendered[s.Name] = s
		}
	}
	for _, name := range dev.Secrets {
		if s, ok := rendered[name]; ok {
			keys := slices.Collect(maps.Keys(s.StringData))
			return append(keys, slices.Collect(maps.Keys(s.Data))...), nil
		}
	}
	return nil, fmt.Errorf("appenv: environment %s: the chart renders none of the Secrets %s reads (%s) to learn their keys from", src.Secrets.Name, service, strings.Join(dev.Secrets, ", "))
}

func (e *ServiceEnv) apply(overrides map[string]string) error {
	var bad []string
	for k, v := range overrides {
		switch {
		case slices.Contains(e.SecretKeys, k):
			bad = append(bad, fmt.Sprintf("%s is a Secret key; pass its value as a secret", k))
		case !hasKey(e.Config, k):
			bad = append(bad, fmt.Sprintf("%s is not a key the chart gives %s", k, e.Service))
		default:
			e.Config[k] = v
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("appenv: service %s: overrides: %s", e.Service, strings.Join(bad, "; "))
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
