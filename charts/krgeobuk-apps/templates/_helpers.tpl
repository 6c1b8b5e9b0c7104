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
Labels of one service's objects. Call with (dict "root" $ "name" $name "svc" $svc).
*/}}
{{- define "krgeobuk.labels" -}}
helm.sh/chart: {{ include "krgeobuk.chart" .root }}
app.kubernetes.io/part-of: krgeobuk
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{ include "krgeobuk.selectorLabels" . }}
app.kubernetes.io/component: {{ .svc.kind }}
app.kubernetes.io/version: {{ include "krgeobuk.version" . | quote }}
{{- end -}}

{{/* Labels that select one service's pods; never change them on a live release. */}}
{{- define "krgeobuk.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The version label: the tag, or the digest's first 12 hex digits. */}}
{{- define "krgeobuk.version" -}}
{{- $img := .svc.image -}}
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
{{- $img := .svc.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else if eq .root.Values.global.imagePolicy "digest" -}}
{{- fail (printf "services.%s.image.digest is required: environment %q deploys images by digest only (imagePolicy=digest)" .name .root.Values.global.environment) -}}
{{- else -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "services.%s.image.tag: \"latest\" is a floating tag; give a version or a digest" .name) -}}
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
