package charts

import "embed"

// MonitoringStack holds the monitoring-stack chart (Prometheus, Alertmanager,
// Grafana) rooted at "monitoring-stack", so pipelines and tests render the
// exact files that are committed. Load it with render.LoadFS(MonitoringStack,
// "monitoring-stack").
//
//go:embed all:monitoring-stack
var MonitoringStack embed.FS
