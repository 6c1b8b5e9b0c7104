package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultTextfileDir is where node_exporter's textfile collector reads
// *.prom files on the data server.
const DefaultTextfileDir = "/var/lib/node_exporter/textfile_collector"

// Metric names. The monitoring chart's "backup is stale" alert reads
// krgeobuk_backup_last_success_timestamp_seconds: keep them as they are.
const (
	MetricLastSuccess     = "krgeobuk_backup_last_success_timestamp_seconds"
	MetricLastRunSuccess  = "krgeobuk_backup_last_run_success"
	MetricVerifySuccess   = "krgeobuk_backup_restore_verify_success"
	MetricVerifyTimestamp = "krgeobuk_backup_restore_verify_timestamp_seconds"
)

var metricHelp = map[string]string{
	MetricLastSuccess:     "Finish time of the newest backup whose checksum verifies (oldest across the store's databases); 0 when there is none.",
	MetricLastRunSuccess:  "1 when the last backup run of the store succeeded, 0 when it failed.",
	MetricVerifySuccess:   "1 when the last restore check restored the newest backup into a scratch instance and it matched the source, 0 otherwise.",
	MetricVerifyTimestamp: "Time the last restore check of the store ran.",
}

type sample struct {
	name  string
	value float64
}

// writeMetrics writes one store's samples to <dir>/<file> atomically, so the
// collector never reads a half-written file.
func writeMetrics(dir, file, store string, samples []sample) error {
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s{store=%q} %s\n",
			s.name, metricHelp[s.name], s.name, s.name, store, formatValue(s.value))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("metrics for %s: %w", store, err)
	}
	p := filepath.Join(dir, file)
	if err := writeFileAtomic(p, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("metrics for %s: %w", store, err)
	}
	return nil
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix())
}

func boolValue(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// BackupMetricsFile and VerifyMetricsFile are the textfile names per store.
func BackupMetricsFile(store string) string { return "krgeobuk_backup_" + store + ".prom" }

// VerifyMetricsFile is the textfile the restore check writes for a store.
func VerifyMetricsFile(store string) string { return "krgeobuk_backup_verify_" + store + ".prom" }
