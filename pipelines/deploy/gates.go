package deploy

import (
	"context"
	"fmt"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// gates runs the rollout gate and then the readiness gate for rev.
func (d *Deployer) gates(ctx context.Context, r *run, rev release.Revision, prefix string) ([]gate.Status, error) {
	workloads, apis, err := d.workloads(rev)
	if err != nil {
		return nil, err
	}
	progress := func(step string) func(gate.Progress) {
		return func(p gate.Progress) {
			if p.Gate == gate.ReadinessGate {
				r.readiness(p)
			}
			d.emit(Event{Step: step, Status: "progress", Gate: &p})
		}
	}
	var statuses []gate.Status
	err = r.step(prefix+"/rollout", func() (string, error) {
		var err error
		statuses, err = gate.WatchRollout(ctx, d.kc.Watch, gate.RolloutOptions{
			Namespace: d.env.Namespace, Release: d.env.Release, Workloads: workloads,
			Timeout: d.env.Gates.RolloutTimeout, UnschedulableGrace: d.env.Gates.UnschedulableGrace,
			ControllerGrace: d.env.Gates.ControllerGrace, APIRead: d.budgets.APIRead,
			Progress: progress(prefix + "/rollout"),
		})
		return fmt.Sprintf("%d workloads fully available", len(workloads)), err
	})
	if err != nil {
		return statuses, err
	}
	err = r.step(prefix+"/readiness", func() (string, error) {
		err := gate.CheckReadiness(ctx, d.eps, gate.ReadinessOptions{
			Namespace: d.env.Namespace, Services: apis, Timeout: d.env.Gates.ReadinessTimeout, Interval: d.budgets.ReadinessInterval,
			Progress: progress(prefix + "/readiness"),
		})
		return fmt.Sprintf("%d readiness endpoints answered 2xx", len(apis)), err
	})
	return statuses, err
}

// workloads maps the Deployments of rev's manifest to services, and picks
// the APIs among them for the readiness gate.
func (d *Deployer) workloads(rev release.Revision) ([]gate.Workload, []catalog.Service, error) {
	deps, err := rev.Deployments()
	if err != nil {
		return nil, nil, err
	}
	var wls []gate.Workload
	var apis []catalog.Service
	for _, name := range deps {
		wls = append(wls, gate.Workload{Service: name, Deployment: name})
		if s, err := catalog.Lookup(name); err == nil && s.IsAPI() {
			apis = append(apis, s)
		}
	}
	return wls, apis, nil
}

// snapshot fills the services from the cluster as they are now and returns
// what holds back those that are not available, classified as the gates do.
func (d *Deployer) snapshot(ctx context.Context, r *run, rev release.Revision) []gate.Problem {
	wls, _, err := d.workloads(rev)
	if err != nil {
		r.note("could not read the workloads of revision %d: %v", rev.Number, err)
		return nil
	}
	statuses, problems, err := gate.Snapshot(ctx, d.kc.Watch, d.env.Namespace, wls, d.budgets.APIRead)
	if err != nil {
		r.note("%v", err)
		return nil
	}
	r.res.Services = d.services(r, statuses, rev)
	return problems
}

func (d *Deployer) services(r *run, statuses []gate.Status, rev release.Revision) []report.Service {
	if len(statuses) == 0 {
		return r.res.Services
	}
	out := make([]report.Service, 0, len(statuses))
	for _, st := range statuses {
		out = append(out, report.Service{
			Name: st.Service, Image: rev.Images[st.Service], Ready: st.Ready, Desired: st.Desired,
			Phase: string(st.Phase), Readiness: r.ready[st.Service],
		})
	}
	return out
}

func pendingServices(enabled []catalog.Service, images []registry.Image) []report.Service {
	byName := map[string]string{}
	for _, img := range images {
		byName[img.Service] = img.Pinned()
	}
	out := make([]report.Service, 0, len(enabled))
	for _, s := range enabled {
		out = append(out, report.Service{Name: s.Name, Image: byName[s.Name], Phase: "not deployed"})
	}
	return out
}
