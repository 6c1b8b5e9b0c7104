//go:build !unix

package kube

// processExists cannot tell here; hostIdentity is empty off Linux anyway,
// so no holder is judged by its process.
func processExists(int) bool { return true }
