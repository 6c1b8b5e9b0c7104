package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	// MetricVerifyLastSuccess is the time of the last restore check that
	// succeeded; a failed check keeps the previous value, so "no good drill
	// for a day" is one comparison with time().
	MetricVerifyLastSuccess = "krgeobuk_backup_restore_verify_last_success_timestamp_seconds"

	// The off-host copy: the run's outcome and the finish time of the
	// newest backup verified on the remote (kept when the remote could not
	// be asked), and the drill run from the off-host copy.
	MetricOffhostLastSuccess       = "krgeobuk_backup_offhost_last_success_timestamp_seconds"
	MetricOffhostLastRunSuccess    = "krgeobuk_backup_offhost_last_run_success"
	MetricOffhostVerifySuccess     = "krgeobuk_backup_offhost_verify_success"
	MetricOffhostVerifyTimestamp   = "krgeobuk_backup_offhost_verify_timestamp_seconds"
	MetricOffhostVerifyLastSuccess = "krgeobuk_backup_offhost_verify_last_success_timestamp_seconds"
)

var metricHelp = map[string]string{
	MetricLastSuccess:       "Finish time of the newest backup whose checksum verifies (oldest across the store's databases); 0 when there is none.",
	MetricLastRunSuccess:    "1 when the last backup run of the store succeeded, 0 when it failed.",
	MetricVerifySuccess:     "1 when the last restore check restored the newest backup into a scratch instance and it matched the source, 0 otherwise.",
	MetricVerifyTimestamp:   "Time the last restore check of the store ran.",
	MetricVerifyLastSuccess: "Time of the last restore check of the store that succeeded; 0 when none did.",
	MetricOffhostLastSuccess: "Finish time of the newest backup whose off-host copy is complete and verified (oldest across the store's databases); " +
		"0 when there is none; kept when the remote could not be reached.",
	MetricOffhostLastRunSuccess:    "1 when the last off-host copy run of the store copied and read back every verified local backup, 0 when it failed.",
	MetricOffhostVerifySuccess:     "1 when the last restore check from the off-host copy restored it into a scratch instance and it matched the source, 0 otherwise.",
	MetricOffhostVerifyTimestamp:   "Time the last restore check from the off-host copy of the store ran.",
	MetricOffhostVerifyLastSuccess: "Time of the last restore check from the off-host copy of the store that succeeded; 0 when none did.",
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

// previousValue reads a gauge from an earlier textfile; 0 when the file or
// the sample is missing or unreadable.
func previousValue(dir, file, name string) float64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			return v
		}
	}
	return 0
}

// verifyMetrics names the metrics of one kind of restore check: of the
// local backups, or of the off-host copy.
type verifyMetrics struct {
	file                            func(store string) string
	success, timestamp, lastSuccess string
}

var (
	localVerify   = verifyMetrics{VerifyMetricsFile, MetricVerifySuccess, MetricVerifyTimestamp, MetricVerifyLastSuccess}
	offhostVerify = verifyMetrics{OffhostVerifyMetricsFile, MetricOffhostVerifySuccess, MetricOffhostVerifyTimestamp, MetricOffhostVerifyLastSuccess}
)

// write records the outcome of a restore check of store. The last success
// time carries over from the previous file when this check failed, so a
// drill that keeps failing (or failing before it starts) shows its age.
func (m verifyMetrics) write(dir, store string, ok bool, now time.Time) error {
	file := m.file(store)
	last := previousValue(dir, file, m.lastSuccess)
	if ok {
		last = unix(now)
	}
	return writeMetrics(dir, file, store, []sample{
		{m.success, boolValue(ok)},
		{m.timestamp, unix(now)},
		{m.lastSuccess, last},
	})
}

// ReportVerifyFailure records a restore check of store (of the off-host
// copy when offhost) that failed before it could run (no scratch server,
// no password): without it the failure would leave no metric and no alert
// would see it.
func ReportVerifyFailure(dir, store string, offhost bool) error {
	m := localVerify
	if offhost {
		m = offhostVerify
	}
	return m.write(dir, store, false, time.Now())
}

// BackupMetricsFile and VerifyMetricsFile are the textfile names per store.
func BackupMetricsFile(store string) string { return "krgeobuk_backup_" + store + ".prom" }

// VerifyMetricsFile is the textfile the restore check writes for a store.
func VerifyMetricsFile(store string) string { return "krgeobuk_backup_verify_" + store + ".prom" }

// OffhostMetricsFile is the textfile the off-host copy writes for a store.
func OffhostMetricsFile(store string) string { return "krgeobuk_backup_offhost_" + store + ".prom" }

// OffhostVerifyMetricsFile is the textfile the restore check from the
// off-host copy writes for a store.
func OffhostVerifyMetricsFile(store string) string {
	return "krgeobuk_backup_offhost_verify_" + store + ".prom"
}
