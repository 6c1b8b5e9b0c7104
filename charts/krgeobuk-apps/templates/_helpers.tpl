{{/* Chart name and version, as the helm.sh/chart label wants it. */}}
{{- define "krgeobuk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "krgeobuk.commonLabels" -}}
helm.sh/chart: {{ include "krgeobuk.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: krgeobuk
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
Labels of one service's objects. Call with (dict "root" $ "name" $name "svc" $svc), plus
"canary" true and "image" (the canary's image map) for the canary's objects.
*/}}
{{- define "krgeobuk.labels" -}}
helm.sh/chart: {{ include "krgeobuk.chart" .root }}
app.kubernetes.io/part-of: krgeobuk
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{ include "krgeobuk.selectorLabels" . }}
app.kubernetes.io/component: {{ .svc.kind }}
app.kubernetes.io/version: {{ include "krgeobuk.version" . | quote }}
{{- end -}}

{{/*
Labels that select one Deployment's pods. A Deployment's selector is immutable: never change them
on a live release. A canary's pods are another instance of the same application
(app.kubernetes.io/instance <release>-canary, .canary true in the context), so neither Deployment's
selector matches the other's pods while the Service (krgeobuk.serviceSelector) selects both.
*/}}
{{- define "krgeobuk.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ include "krgeobuk.instance" . }}
{{- end -}}

{{/* The instance label: the release, or <release>-canary for the canary's objects. */}}
{{- define "krgeobuk.instance" -}}
{{- if .canary -}}{{ printf "%s-canary" .root.Release.Name }}{{- else -}}{{ .root.Release.Name }}{{- end -}}
{{- end -}}

{{/*
The Service's selector: every pod of the service, stable and canary. It has to match the pods of
charts that predate the canary too (they carry no new label), so it is the application's name and
the platform: one release of this chart per namespace (docs/charts.md, "Canary").
*/}}
{{- define "krgeobuk.serviceSelector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: krgeobuk
{{- end -}}

{{/*
A NetworkPolicy podSelector for every pod of a service of this release, stable and canary: the
canary is reached, scraped and confined exactly as the stable pods are.
*/}}
{{- define "krgeobuk.servicePods" -}}
matchLabels:
  app.kubernetes.io/name: {{ .name }}
matchExpressions:
  - key: app.kubernetes.io/instance
    operator: In
    values: [{{ .root.Release.Name | quote }}, {{ printf "%s-canary" .root.Release.Name | quote }}]
{{- end -}}

{{/*
The canary's image map, as JSON (fromJson it): its repository defaults to the service's; digest
and tag are the canary's own and never fall back to the stable image's, so a canary given only a
tag can never run the stable digest. Call with (dict "svc" $svc).
*/}}
{{- define "krgeobuk.canaryImage" -}}
{{- $c := .svc.canary.image | default dict -}}
{{- toJson (dict "repository" ($c.repository | default .svc.image.repository) "digest" ($c.digest | default "") "tag" ($c.tag | default "")) -}}
{{- end -}}

{{/* The version label: the tag, or the digest's first 12 hex digits. */}}
{{- define "krgeobuk.version" -}}
{{- $img := .image | default .svc.image -}}
{{- if $img.digest -}}
{{- trimPrefix "sha256:" $img.digest | trunc 12 -}}
{{- else -}}
{{- default .root.Chart.AppVersion $img.tag -}}
{{- end -}}
{{- end -}}

{{/*
The image reference. A digest always wins. Where the environment demands digests, a missing digest
fails the render; "latest" is refused everywhere (values.schema.json refuses it too).
*/}}
{{- define "krgeobuk.image" -}}
{{- $img := .image | default .svc.image -}}
{{- $path := printf "services.%s.image" .name -}}
{{- if .canary -}}{{- $path = printf "services.%s.canary.image" .name -}}{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else if eq .root.Values.global.imagePolicy "digest" -}}
{{- fail (printf "%s.digest is required: environment %q deploys images by digest only (imagePolicy=digest)" $path .root.Values.global.environment) -}}
{{- else -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "%s.tag: \"latest\" is a floating tag; give a version or a digest" $path) -}}
{{- end -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret an API reads its credentials from. */}}
{{- define "krgeobuk.secretName" -}}
{{- default (printf "%s-secrets" .name) .svc.secret.existingSecret -}}
{{- end -}}

{{/* The Secret holding an API's JWT key pairs: out of band in every environment. */}}
{{- define "krgeobuk.jwtSecretName" -}}
{{- default (printf "%s-jwt" .name) ((.svc.jwt).existingSecret) -}}
{{- end -}}

{{/* The enabled services, as a sorted list of names (for stable output). */}}
{{- define "krgeobuk.enabledNames" -}}
{{- $out := list -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}{{- $out = append $out $name -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The restricted container securityContext every container gets. */}}
{{- define "krgeobuk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
nginx.conf for an SPA: unprivileged port, every writable path under /tmp (read-only root
filesystem), SPA fallback to index.html, long-lived caching for hashed assets, never for index.html.
*/}}
{{- define "krgeobuk.nginxConf" -}}
worker_processes auto;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;

events {
  worker_connections 1024;
}

http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  server_tokens off;
  sendfile on;
  keepalive_timeout 65;

  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;

  gzip on;
  gzip_vary on;
  gzip_min_length 1024;
  gzip_types text/plain text/css application/json application/javascript text/javascript image/svg+xml;

  server {
    listen {{ .svc.ports.http }};
    server_name _;
    root /usr/share/nginx/html;

    # Hashed build assets never change under the same name.
    location ~* \.(?:js|css|woff2?|png|jpg|jpeg|gif|svg|ico)$ {
      expires 1y;
      add_header Cache-Control "public, max-age=31536000, immutable";
      try_files $uri =404;
    }

    location = /index.html {
      add_header Cache-Control "no-cache";
    }

    # Client-side routes fall back to the SPA shell.
    location / {
      try_files $uri $uri/ /index.html;
    }
  }
}
{{- end -}}

{{/* Egress to the cluster DNS, UDP and TCP (large answers fall back to TCP). */}}
{{- define "krgeobuk.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{/* The data-server port of a store a service names; an unknown store fails the render. */}}
{{- define "krgeobuk.storePort" -}}
{{- $def := get .root.Values.dataStores .store -}}
{{- if not $def -}}
{{- fail (printf "services.%s.stores: %q is not in dataStores (known: %s)" .name .store (keys .root.Values.dataStores | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $def.port -}}
{{- end -}}
