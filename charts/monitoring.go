package charts

import "embed"

// MonitoringStack holds the monitoring-stack chart (Prometheus, Alertmanager,
// Grafana) rooted at MonitoringStackDir, so pipelines and tests render the
// exact files that are committed. Load it with render.LoadFS(MonitoringStack,
// MonitoringStackDir).
//
//go:embed all:monitoring-stack
var MonitoringStack embed.FS

// MonitoringStackDir is the chart's directory inside MonitoringStack.
const MonitoringStackDir = "monitoring-stack"
