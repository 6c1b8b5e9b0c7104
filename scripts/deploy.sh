#!/usr/bin/env bash
# Operator wrapper: the gated deploy of the Dagger module, with the kubeconfig and registry token
# passed as secrets (never as plain flags).
#   scripts/deploy.sh ENV service=repository@sha256:... [...]   deploy these images
#   scripts/deploy.sh ENV --registry ghcr.io/krgeobuk --tag SHA --<service>-source DIR …  build them, then deploy
#   scripts/deploy.sh ENV --stack monitoring [component=ref ...] the monitoring stack (the chart's versions)
# KUBECONFIG (default ~/.kube/config) is read as file:; REGISTRY_USER with REGISTRY_TOKEN, if set,
# authenticate registry access.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
env_name="$1"
shift
args=(--env "$env_name" --kubeconfig "file:${KUBECONFIG:-$HOME/.kube/config}")
while [ $# -gt 0 ]; do
  case "$1" in
    --*) args+=("$1" "$2"); shift 2 ;;
    *) args+=(--image "$1"); shift ;;
  esac
done
if [ -n "${REGISTRY_TOKEN:-}" ]; then
  args+=(--username "${REGISTRY_USER:?REGISTRY_USER must be set with REGISTRY_TOKEN}" --password env:REGISTRY_TOKEN)
fi
cd "$(dirname "$0")/.."
exec dagger call deploy "${args[@]}"
