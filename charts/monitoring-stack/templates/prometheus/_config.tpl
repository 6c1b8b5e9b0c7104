{{/* prometheus.yml. Rule files sit beside it (same ConfigMap, same directory). */}}
{{- define "mon.prometheusConfig" -}}
{{- $v := .Values -}}
{{- $ds := $v.dataServer -}}
global:
  scrape_interval: {{ $v.prometheus.scrapeInterval }}
  scrape_timeout: {{ $v.prometheus.scrapeTimeout }}
  evaluation_interval: {{ $v.prometheus.evaluationInterval }}
  external_labels:
    environment: {{ $v.environment | quote }}
    {{- range $k, $val := $v.prometheus.externalLabels }}
    {{ $k }}: {{ $val | quote }}
    {{- end }}
rule_files:
  - "*.rules.yaml"
{{- if or $v.prometheus.alertmanagers $v.alertmanager.enabled }}
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets:
          {{- if $v.prometheus.alertmanagers }}
          {{- range $v.prometheus.alertmanagers }}
            - {{ . | quote }}
          {{- end }}
          {{- else }}
          {{- $am := include "mon.name" (dict "root" . "component" "alertmanager") }}
          {{- range $i, $_ := until (int $v.alertmanager.replicas) }}
            - {{ printf "%s-%d.%s-headless.%s.svc:%d" $am $i $am $.Release.Namespace 9093 | quote }}
          {{- end }}
          {{- end }}
{{- end }}
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]

  # The krgeobuk services: pods annotated prometheus.io/scrape, path and port
  # from prometheus.io/path and prometheus.io/port. The service and
  # pod_template_hash labels let alerts and deploy gates select a revision, the
  # track label the canary or the stable pods.
  - job_name: krgeobuk-apps
    {{- if eq $v.apps.discovery "static" }}
    static_configs:
      {{- toYaml $v.apps.staticConfigs | nindent 6 }}
    {{- else }}
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: [{{ $v.apps.namespace | quote }}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_phase]
        action: drop
        regex: (Pending|Succeeded|Failed)
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        target_label: service
      - source_labels: [__meta_kubernetes_pod_label_pod_template_hash]
        target_label: pod_template_hash
      # stable or canary (krgeobuk-apps' krgeobuk.io/track pod label): a canary's series
      # are told from the stable revision's without knowing either pod_template_hash.
      - source_labels: [__meta_kubernetes_pod_label_krgeobuk_io_track]
        target_label: track
    {{- end }}

  # The data server's node exporter (host metrics and the backup textfile metrics).
  - job_name: data-server-node
    static_configs:
      - targets: [{{ printf "%s:%d" $ds.address (int $ds.exporters.node.port) | quote }}]
        labels:
          data_server: {{ $ds.address | quote }}

  # Both MySQL instances through mysqld_exporter's multi-target /probe.
  - job_name: data-server-mysqld
    metrics_path: /probe
    static_configs:
      {{- range $ds.stores }}
      {{- if eq .engine "mysql" }}
      - targets: [{{ include "mon.storeTarget" (dict "root" $ "store" .) | quote }}]
        labels:
          store: {{ .name | quote }}
          {{- if .authModule }}
          __param_auth_module: {{ .authModule | quote }}
          {{- end }}
      {{- end }}
      {{- end }}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [store]
        target_label: instance
      - target_label: __address__
        replacement: {{ printf "%s:%d" $ds.address (int $ds.exporters.mysqld.port) | quote }}

  # Both Redis instances through redis_exporter's multi-target /scrape.
  - job_name: data-server-redis
    metrics_path: /scrape
    static_configs:
      {{- range $ds.stores }}
      {{- if eq .engine "redis" }}
      - targets: [{{ printf "redis://%s" (include "mon.storeTarget" (dict "root" $ "store" .)) | quote }}]
        labels:
          store: {{ .name | quote }}
      {{- end }}
      {{- end }}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [store]
        target_label: instance
      - target_label: __address__
        replacement: {{ printf "%s:%d" $ds.address (int $ds.exporters.redis.port) | quote }}
{{- if $v.prometheus.kubernetes.enabled }}

  # Kubelet metrics, scraped directly (RBAC: nodes/metrics).
  - job_name: kubernetes-nodes
    scheme: https
    kubernetes_sd_configs:
      - role: node
    tls_config:
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
      insecure_skip_verify: {{ $v.prometheus.kubernetes.nodes.insecureSkipVerify }}
    authorization:
      credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    relabel_configs:
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)

  # The kubelets' probe results (readiness of the SPAs: KrgeobukSPAUnavailable), only the apps
  # namespace's, to keep the series count small.
  - job_name: kubernetes-probes
    scheme: https
    metrics_path: /metrics/probes
    kubernetes_sd_configs:
      - role: node
    tls_config:
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
      insecure_skip_verify: {{ $v.prometheus.kubernetes.nodes.insecureSkipVerify }}
    authorization:
      credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    metric_relabel_configs:
      - source_labels: [__name__, namespace]
        regex: {{ printf "prober_probe_total;%s" $v.apps.namespace | quote }}
        action: keep

  # Services annotated prometheus.io/scrape, through their endpoint slices.
  - job_name: kubernetes-service-endpoints
    kubernetes_sd_configs:
      - role: endpointslice
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_path]
        action: replace
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_service_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_service_name]
        target_label: kubernetes_service
{{- end }}
{{- end -}}
