// Package realnodetest runs the product on pods that really run: the apps
// chart of each environment installed by the gated deploy, as the deployer
// ServiceAccount, on the real node of internal/testenv/realnode, with the
// cluster bootstrap of k8s/ applied (Pod Security "restricted", quota,
// LimitRange), images built from examples/ (internal/exampleimages) pulled
// from the node's registry, and real MariaDB and Redis on the data-server
// address reached through the chart's selector-less Services.
//
// What only a real node shows, and the simulated cluster (kwok) cannot:
// probes, security contexts and the wait-for-database init container
// against real processes; NetworkPolicies enforced both ways; a readiness
// gate that must get through those policies; crash loops, exit codes and
// log lines from a real kubelet. The tests are its _test.go files;
// StartDataServer, the apps' world outside the cluster, is shared with the
// end-to-end suite (e2e/moduletest), which deploys through the Dagger module
// to a real node too.
package realnodetest
