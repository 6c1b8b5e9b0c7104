{{/* Names are the release name plus the component ("monitoring-grafana"), at most 63 characters. */}}
{{- define "mon.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Cluster-scoped names carry the namespace too, unless the name already starts with it. */}}
{{- define "mon.clusterName" -}}
{{- if hasPrefix .root.Release.Namespace .name -}}
{{- .name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Namespace .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mon.name" -}}
{{- printf "%s-%s" (include "mon.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades. Call with (dict "root" $ "component" "x"). */}}
{{- define "mon.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "mon.labels" -}}
{{ include "mon.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: krgeobuk-monitoring
app.kubernetes.io/version: {{ .version | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The restricted Pod Security profile, pod level. */}}
{{- define "mon.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security profile, container level. */}}
{{- define "mon.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The image reference, under the same policy as the apps chart: a digest always wins (the tag stays
beside it for people); where the environment demands digests a missing one fails the render.
Call with (dict "root" $ "component" "prometheus" "image" $p.image).
*/}}
{{- define "mon.image" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{ $img.repository }}:{{ $img.tag }}@{{ $img.digest }}
{{- else if eq .root.Values.imagePolicy "digest" -}}
{{- fail (printf "%s.image.digest is required: environment %q deploys images by digest only (imagePolicy: digest); supply the digest of %s:%s (for example --set %s.image.digest=sha256:...)" .component .root.Values.environment $img.repository $img.tag .component) -}}
{{- else -}}
{{ $img.repository }}:{{ $img.tag }}
{{- end -}}
{{- end -}}

{{/* The address Prometheus dials for a store: explicit target or the data server's published port. */}}
{{- define "mon.storeTarget" -}}
{{- if .store.target -}}
{{ .store.target }}
{{- else -}}
{{ .root.Values.dataServer.address }}:{{ .store.port }}
{{- end -}}
{{- end -}}

{{/*
mon.checkReceivers refuses literal secrets in receivers unless the
environment is development and alertmanager.allowLiteralSecrets is true.
*/}}
{{- define "mon.checkReceivers" -}}
{{- $allow := and .Values.alertmanager.allowLiteralSecrets (eq .Values.environment "development") -}}
{{- if and .Values.alertmanager.allowLiteralSecrets (ne .Values.environment "development") -}}
{{- fail (printf "alertmanager.allowLiteralSecrets is true but environment is %q: literal receiver secrets are allowed only in development; mount an existing Secret with alertmanager.secretMounts and use urlFile/apiURLFile/authPasswordFile" .Values.environment) -}}
{{- end -}}
{{- range $i, $r := .Values.alertmanager.receivers -}}
{{- if and $r.webhook $r.webhook.url (not $allow) -}}
{{- fail (printf "alertmanager.receivers[%d] (%s): webhook.url is a literal secret; use webhook.urlFile with a Secret from alertmanager.secretMounts" $i $r.name) -}}
{{- end -}}
{{- if and $r.slack $r.slack.apiURL (not $allow) -}}
{{- fail (printf "alertmanager.receivers[%d] (%s): slack.apiURL is a literal secret; use slack.apiURLFile with a Secret from alertmanager.secretMounts" $i $r.name) -}}
{{- end -}}
{{- if and $r.email $r.email.authPassword (not $allow) -}}
{{- fail (printf "alertmanager.receivers[%d] (%s): email.authPassword is a literal secret; use email.authPasswordFile with a Secret from alertmanager.secretMounts" $i $r.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Replicas of one component on different nodes, required rather than preferred: a preferred rule is
only weighed when a pod is scheduled, so after a drain both replicas can end up (and stay) on one
node, silently undoing the HA they exist for. Required costs a Pending replica while the cluster has
fewer schedulable nodes than replicas, which is visible and leaves the other replica serving.
Call with (dict "root" $ "component" "x" "replicas" n); renders nothing for a single replica.
*/}}
{{- define "mon.antiAffinity" -}}
{{- if gt (int .replicas) 1 -}}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "mon.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}
