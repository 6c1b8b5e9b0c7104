// Package testenv runs a real Kubernetes control plane for tests and demos:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler (v1.37.2)
// as child processes on free loopback ports, with kwok playing the kubelet
// of fake nodes. Deployments roll out, the scheduler schedules, controllers
// reconcile; containers do not really run.
//
// One cluster per test package:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := testenv.Shared(t)
//		client := kubernetes.NewForConfigOrDie(c.RESTConfig())
//		...
//	}
//
// Start gives a cluster of one's own (demos, tests that break the cluster).
//
// Pods pick a failure with the FaultLabel label (values FaultCrashLoop,
// FaultImagePull, FaultExitError, FaultNeverReady, FaultSlowReady); a
// nodeSelector on UnschedulableSelectorKey leaves a pod unschedulable.
// The cluster itself can lose its API server (StopAPIServer,
// StartAPIServer) or a node (SetNodeReady).
//
// The binaries are built from the tools modules under scripts/testenv into
// $KRGEOBUK_CACHE/testenv (see package binaries); `make testenv` builds
// them ahead of time, and Main builds them before the tests start if the
// cache lacks them.
package testenv
