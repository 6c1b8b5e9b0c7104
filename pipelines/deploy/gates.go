package deploy

import (
	"context"
	"fmt"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// gates runs the rollout gate and then the readiness gate for rev.
func (d *Deployer) gates(ctx context.Context, r *run, rev release.Revision, prefix string) ([]gate.Status, error) {
	workloads, checks, err := d.workloads(rev)
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
			Namespace: d.stack.Namespace, Release: d.stack.Release, Workloads: workloads,
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
			Namespace: d.stack.Namespace, Checks: checks, Timeout: d.env.Gates.ReadinessTimeout, Interval: d.budgets.ReadinessInterval,
			Progress: progress(prefix + "/readiness"),
		})
		return fmt.Sprintf("%d readiness endpoints answered 2xx", len(checks)), err
	})
	return statuses, err
}

// workloads maps the Deployments and StatefulSets of rev's manifest to the
// components they run, and the readiness checks the stack asks of them:
// each through the Service named as its workload (both charts name them
// alike; TestReadinessProbesMatchTheCharts).
func (d *Deployer) workloads(rev release.Revision) ([]gate.Workload, []gate.Check, error) {
	objs, err := rev.Workloads()
	if err != nil {
		return nil, nil, err
	}
	var wls []gate.Workload
	var checks []gate.Check
	for _, o := range objs {
		wls = append(wls, gate.Workload{Service: o.Component, Kind: o.Kind, Name: o.Name})
		if p, ok := d.stack.Readiness(o.Component); ok {
			checks = append(checks, gate.Check{Name: o.Component, Service: o.Name, Port: p.PortName, Path: p.Path})
		}
	}
	return wls, checks, nil
}

// snapshot fills the services from the cluster as they are now and returns
// what holds back those that are not available, classified as the gates do.
func (d *Deployer) snapshot(ctx context.Context, r *run, rev release.Revision) []gate.Problem {
	wls, _, err := d.workloads(rev)
	if err != nil {
		r.note("could not read the workloads of revision %d: %v", rev.Number, err)
		return nil
	}
	statuses, problems, err := gate.Snapshot(ctx, d.kc.Watch, d.stack.Namespace, wls, d.budgets.APIRead)
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

func pendingServices(enabled []string, images []registry.Image) []report.Service {
	byName := map[string]string{}
	for _, img := range images {
		byName[img.Service] = img.Pinned()
	}
	out := make([]report.Service, 0, len(enabled))
	for _, name := range enabled {
		out = append(out, report.Service{Name: name, Image: byName[name], Phase: "not deployed"})
	}
	return out
}
