package catalog

// The names krgeobuk-apps gives a service's canary (services.<name>.canary in
// the chart); charts/canary_test.go checks that the chart renders exactly these.
const (
	// TrackLabel is the pod label that tells a service's stable pods from its
	// canary's. It is on pod templates only, never in a selector; the
	// monitoring stack copies it into the Prometheus label PromTrackLabel.
	TrackLabel = "krgeobuk.io/track"
	// PromTrackLabel is the Prometheus label carrying TrackLabel's value.
	PromTrackLabel = "track"
	// TrackStable marks the pods of the Deployment named after the service.
	TrackStable = "stable"
	// TrackCanary marks the pods of CanaryDeployment.
	TrackCanary = "canary"
)

// CanaryDeployment is the name of service's canary Deployment.
func CanaryDeployment(service string) string { return service + "-canary" }

// CanaryInstance is the app.kubernetes.io/instance label of the canary's pods
// in release: the stable Deployment's immutable selector names the release
// itself, so a different instance keeps the canary's pods out of it.
func CanaryInstance(release string) string { return release + "-canary" }
