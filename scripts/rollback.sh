#!/usr/bin/env bash
# Operator wrapper: roll an environment back to a verified revision through the Dagger module.
#   scripts/rollback.sh ENV [REVISION]   (default: the newest verified revision before the current)
# KUBECONFIG (default ~/.kube/config) is read as file:, a secret.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '2,4p' "$0" >&2
  exit 2
fi
args=(--env "$1" --kubeconfig "file:${KUBECONFIG:-$HOME/.kube/config}")
if [ $# -eq 2 ]; then
  args+=(--revision "$2")
fi
cd "$(dirname "$0")/.."
exec dagger call rollback "${args[@]}"
