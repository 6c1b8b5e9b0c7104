{{/*
The alerting rules. Every threshold and window comes from .Values.alerts, so
environments and tests tune them without touching an expression.
*/}}
{{- define "mon.rules" -}}
{{- $a := .Values.alerts -}}
groups:
  - name: krgeobuk-apps
    rules:
      - alert: KrgeobukAppDown
        expr: up{job="krgeobuk-apps"} == 0
        for: {{ $a.appDown.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"{{ $labels.service }} pod {{ $labels.pod }} is down"`}}
          description: {{`"Prometheus cannot scrape {{ $labels.instance }} of {{ $labels.service }}."`}}
      - alert: KrgeobukHighErrorRate
        expr: |-
          (
            sum by (service) (rate(http_requests_total{job="krgeobuk-apps",status_code=~"5.."}[{{ $a.highErrorRate.window }}]))
          /
            sum by (service) (rate(http_requests_total{job="krgeobuk-apps"}[{{ $a.highErrorRate.window }}]))
          ) > {{ $a.highErrorRate.ratio }}
        for: {{ $a.highErrorRate.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"{{ $labels.service }} answers {{ $value | humanizePercentage }} of requests with 5xx"`}}
          description: {{ printf "5xx ratio over %s is above %v." $a.highErrorRate.window $a.highErrorRate.ratio | quote }}
      - alert: KrgeobukHighLatency
        expr: |-
          histogram_quantile(0.95,
            sum by (service, le) (rate(http_request_duration_seconds_bucket{job="krgeobuk-apps"}[{{ $a.highLatency.window }}]))
          ) > {{ $a.highLatency.p95Seconds }}
        for: {{ $a.highLatency.for }}
        labels:
          severity: warning
        annotations:
          summary: {{`"{{ $labels.service }} p95 latency is {{ $value | humanizeDuration }}"`}}
          description: {{ printf "p95 of http_request_duration_seconds over %s is above %vs." $a.highLatency.window $a.highLatency.p95Seconds | quote }}
      {{- /*
      One rule per API: absent() of a filtered expression has no labels, so each rule names its
      service. "== 1" makes it fire on no target at all (pods gone or not annotated) and on every
      target down; KrgeobukAppDown only ever sees targets that exist.
      */}}
      {{- range .Values.apps.apis }}
      - alert: KrgeobukAppAbsent
        expr: absent(up{job="krgeobuk-apps",service={{ . | quote }}} == 1)
        for: {{ $a.appAbsent.for }}
        labels:
          severity: critical
          service: {{ . }}
        annotations:
          summary: {{ printf "%s has no scrapeable pod" . | quote }}
          description: {{ printf "No target of job krgeobuk-apps with service=%q answers: its pods are gone, not annotated for scraping, or all down." . | quote }}
      {{- end }}
      {{- /*
      The SPAs expose no metrics; their availability is the kubelet's readiness probes (GET / on
      nginx), scraped from every kubelet's /metrics/probes (job kubernetes-probes). It fires when
      no pod of the SPA passed one over the window: none running, or none serving. It sees the
      pods, not the Ingress or its certificate.
      */}}
      {{- range .Values.apps.spas }}
      - alert: KrgeobukSPAUnavailable
        expr: absent(sum(rate(prober_probe_total{job="kubernetes-probes",namespace={{ $.Values.apps.namespace | quote }},container={{ . | quote }},probe_type="Readiness",result="successful"}[{{ $a.spaUnavailable.window }}])) > 0)
        for: {{ $a.spaUnavailable.for }}
        labels:
          severity: critical
          service: {{ . }}
        annotations:
          summary: {{ printf "%s has no pod passing its readiness probe" . | quote }}
          description: {{ printf "No readiness probe of a %s pod in namespace %s succeeded over %s: the SPA is not served." . $.Values.apps.namespace $a.spaUnavailable.window | quote }}
      {{- end }}

  - name: krgeobuk-data-server
    rules:
      - alert: DataServerExporterDown
        expr: up{job=~"data-server-node|data-server-mysqld|data-server-redis"} == 0
        for: {{ $a.exporterDown.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"{{ $labels.job }} exporter on the data server is unreachable ({{ $labels.instance }})"`}}
          description: "Prometheus cannot scrape the data server exporter; store and backup alerts are blind until it is back."
      - alert: MySQLDown
        expr: mysql_up{job="data-server-mysqld"} == 0
        for: {{ $a.storeDown.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"MySQL {{ $labels.store }} is down"`}}
          description: {{`"mysqld_exporter cannot connect to {{ $labels.store }}."`}}
      - alert: RedisDown
        expr: redis_up{job="data-server-redis"} == 0
        for: {{ $a.storeDown.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"Redis {{ $labels.store }} is down"`}}
          description: {{`"redis_exporter cannot connect to {{ $labels.store }}."`}}

  - name: krgeobuk-backups
    rules:
      - alert: KrgeobukBackupStale
        expr: time() - max by (store) (krgeobuk_backup_last_success_timestamp_seconds) > {{ int64 $a.backupStale.maxAgeSeconds }}
        for: {{ $a.backupStale.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"The last good backup of {{ $labels.store }} is {{ $value | humanizeDuration }} old"`}}
          description: {{ printf "No successful backup within %v seconds." (int64 $a.backupStale.maxAgeSeconds) | quote }}
      {{- range .Values.dataServer.stores }}
      - alert: KrgeobukBackupMissing
        expr: absent(krgeobuk_backup_last_success_timestamp_seconds{store={{ .name | quote }}})
        for: {{ $a.backupMissing.for }}
        labels:
          severity: critical
        annotations:
          summary: {{ printf "No backup metric for %s" .name | quote }}
          description: "The backup job has never reported a success, or the node exporter textfile collector lost its file."
      {{- end }}
      - alert: KrgeobukBackupFailed
        expr: krgeobuk_backup_last_run_success == 0
        for: {{ $a.backupFailed.for }}
        labels:
          severity: warning
        annotations:
          summary: {{`"The last backup run of {{ $labels.store }} failed"`}}
          description: "The newest backup attempt did not finish; older backups are kept."
      - alert: KrgeobukBackupRestoreVerifyFailed
        expr: krgeobuk_backup_restore_verify_success == 0
        for: {{ $a.restoreVerifyFailed.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"The newest backup of {{ $labels.store }} did not restore cleanly"`}}
          description: "The verification job restored the backup into a scratch instance and it did not match the source."
      - alert: KrgeobukBackupRestoreVerifyStale
        expr: time() - max by (store) (krgeobuk_backup_restore_verify_last_success_timestamp_seconds) > {{ int64 $a.restoreVerifyStale.maxAgeSeconds }}
        for: {{ $a.restoreVerifyStale.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"No restore check of {{ $labels.store }} has succeeded for {{ $value | humanizeDuration }}"`}}
          description: {{ printf "No successful restore check within %v seconds: the nightly drill failed, failed before it ran, or did not run." (int64 $a.restoreVerifyStale.maxAgeSeconds) | quote }}
      {{- range .Values.dataServer.stores }}
      - alert: KrgeobukBackupRestoreVerifyMissing
        expr: absent(krgeobuk_backup_restore_verify_last_success_timestamp_seconds{store={{ .name | quote }}})
        for: {{ $a.restoreVerifyMissing.for }}
        labels:
          severity: critical
        annotations:
          summary: {{ printf "No restore check metric for %s" .name | quote }}
          description: "The nightly restore check has never reported for this store, or the node exporter textfile collector lost its file."
      {{- end }}
      {{- /*
      The off-host copy (krgeobuk-backup offhost): a backup that lives only on the data server
      dies with its disk. The last-success metric is the finish time of the newest backup whose
      off-host copy is complete and verified; it keeps its value while the remote cannot be
      reached, so an unreachable or full remote goes stale instead of silent.
      */}}
      - alert: KrgeobukBackupOffhostFailed
        expr: krgeobuk_backup_offhost_last_run_success == 0
        for: {{ $a.offhostFailed.for }}
        labels:
          severity: warning
        annotations:
          summary: {{`"The last off-host copy of {{ $labels.store }} failed"`}}
          description: "The copy to the second location failed (unreachable, full, refused or not configured); the local backups and the older off-host copies are kept."
      - alert: KrgeobukBackupOffhostStale
        expr: time() - max by (store) (krgeobuk_backup_offhost_last_success_timestamp_seconds) > {{ int64 $a.offhostStale.maxAgeSeconds }}
        for: {{ $a.offhostStale.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"The newest off-host copy of {{ $labels.store }} is {{ $value | humanizeDuration }} old"`}}
          description: {{ printf "No backup was copied off the data server and verified there within %v seconds: losing its disk now loses the newer backups." (int64 $a.offhostStale.maxAgeSeconds) | quote }}
      {{- range .Values.dataServer.stores }}
      - alert: KrgeobukBackupOffhostMissing
        expr: absent(krgeobuk_backup_offhost_last_success_timestamp_seconds{store={{ .name | quote }}})
        for: {{ $a.offhostMissing.for }}
        labels:
          severity: critical
        annotations:
          summary: {{ printf "No off-host copy metric for %s" .name | quote }}
          description: "The off-host copy has never reported for this store (not scheduled?), or the node exporter textfile collector lost its file."
      {{- end }}
      - alert: KrgeobukBackupOffhostVerifyFailed
        expr: krgeobuk_backup_offhost_verify_success == 0
        for: {{ $a.offhostVerifyFailed.for }}
        labels:
          severity: critical
        annotations:
          summary: {{`"The off-host copy of {{ $labels.store }} did not restore cleanly"`}}
          description: "The drill restored the newest off-host copy into a scratch instance and it was damaged, missing or did not match the source; run krgeobuk-backup offhost --recopy."
{{- end -}}
