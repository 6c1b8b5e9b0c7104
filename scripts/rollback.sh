#!/usr/bin/env bash
# Operator wrapper: roll an environment's release back to a verified revision through the Dagger module.
#   scripts/rollback.sh ENV [REVISION]                    the apps (default: the newest verified before the current)
#   scripts/rollback.sh ENV [REVISION] --stack monitoring the monitoring stack's release
# KUBECONFIG (default ~/.kube/config) is read as file:, a secret.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,5p' "$0" >&2
  exit 2
fi
args=(--env "$1" --kubeconfig "file:${KUBECONFIG:-$HOME/.kube/config}")
shift
while [ $# -gt 0 ]; do
  case "$1" in
    --*) args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    *) args+=(--revision "$1"); shift ;;
  esac
done
cd "$(dirname "$0")/.."
exec dagger call rollback "${args[@]}"
