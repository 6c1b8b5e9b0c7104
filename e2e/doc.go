// Package e2e holds the end-to-end tests that run the Dagger module on a real engine; they run
// only through `make e2e`, which starts the engine (scripts/engine) and runs the test binary in
// its network namespace.
package e2e
