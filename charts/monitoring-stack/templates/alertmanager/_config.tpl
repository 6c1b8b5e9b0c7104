{{/*
alertmanager.yml from values. URLs and passwords are referenced by file
(mounted from existing Secrets); literals only pass mon.checkReceivers in
development.
*/}}
{{- define "mon.alertmanagerConfig" -}}
{{- include "mon.checkReceivers" . -}}
{{- $r := .Values.alertmanager.route -}}
route:
  receiver: {{ $r.receiver | quote }}
  group_by: {{ toJson $r.groupBy }}
  group_wait: {{ $r.groupWait }}
  group_interval: {{ $r.groupInterval }}
  repeat_interval: {{ $r.repeatInterval }}
  {{- with $r.routes }}
  routes:
    {{- range . }}
    - receiver: {{ .receiver | quote }}
      matchers: {{ toJson .matchers }}
      continue: {{ .continue | default false }}
    {{- end }}
  {{- end }}
receivers:
  {{- range .Values.alertmanager.receivers }}
  - name: {{ .name | quote }}
    {{- with .webhook }}
    webhook_configs:
      - send_resolved: {{ ne .sendResolved false }}
        {{- if .urlFile }}
        url_file: {{ .urlFile | quote }}
        {{- else }}
        url: {{ .url | quote }}
        {{- end }}
    {{- end }}
    {{- with .slack }}
    slack_configs:
      - send_resolved: {{ ne .sendResolved false }}
        channel: {{ .channel | quote }}
        {{- if .apiURLFile }}
        api_url_file: {{ .apiURLFile | quote }}
        {{- else }}
        api_url: {{ .apiURL | quote }}
        {{- end }}
    {{- end }}
    {{- with .email }}
    email_configs:
      - send_resolved: {{ ne .sendResolved false }}
        to: {{ .to | quote }}
        from: {{ .from | quote }}
        smarthost: {{ .smarthost | quote }}
        require_tls: {{ ne .requireTLS false }}
        {{- if .authUsername }}
        auth_username: {{ .authUsername | quote }}
        {{- end }}
        {{- if .authPasswordFile }}
        auth_password_file: {{ .authPasswordFile | quote }}
        {{- else if .authPassword }}
        auth_password: {{ .authPassword | quote }}
        {{- end }}
    {{- end }}
  {{- end }}
{{- end -}}
