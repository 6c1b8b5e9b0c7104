#!/usr/bin/env bash
# Admits only the cluster's node network (and loopback and the data server's
# own Docker network) to the store ports 3307 3308 6380 6381 and the exporter
# ports 9100 9104 9121; everything else aimed at those ports is dropped. Other
# ports are left alone.
#
# The rules live in one chain, KRGEOBUK-DATA, replaced atomically with
# iptables-restore --noflush, and hooked into INPUT (host-network exporters,
# local clients) and DOCKER-USER (published container ports, which bypass
# INPUT). Running it again gives the same rules: it is idempotent.
#
# usage: firewall-rules.sh [--dry-run] [--docker-subnet CIDR] --cidr CIDR [--cidr CIDR...]
#        CLUSTER_NODE_CIDR="10.20.0.0/16,10.21.0.0/16" firewall-rules.sh
set -euo pipefail

chain=KRGEOBUK-DATA
ports=3307,3308,6380,6381,9100,9104,9121
docker_subnet=172.30.0.0/24 # networks.default in the compose files
dry_run=false
cidrs=()
IFS=, read -r -a env_cidrs <<< "${CLUSTER_NODE_CIDR:-}"
for c in "${env_cidrs[@]}"; do [ -n "$c" ] && cidrs+=("$c"); done

die() { echo "firewall-rules: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true ;;
    --cidr) [ $# -ge 2 ] || die "--cidr needs a value"; cidrs+=("$2"); shift ;;
    --docker-subnet) [ $# -ge 2 ] || die "--docker-subnet needs a value"; docker_subnet="$2"; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

valid_cidr() {
  local ip prefix o
  [[ "$1" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3})/([0-9]{1,2})$ ]] || return 1
  ip="${BASH_REMATCH[1]}" prefix="${BASH_REMATCH[3]}"
  # /0 would admit the whole internet: that is no restriction.
  [ "$prefix" -ge 1 ] && [ "$prefix" -le 32 ] || return 1
  IFS=. read -r -a o <<< "$ip"
  for x in "${o[@]}"; do [ "$x" -le 255 ] || return 1; done
}
[ ${#cidrs[@]} -gt 0 ] || die "no cluster node CIDR: pass --cidr CIDR or set CLUSTER_NODE_CIDR"
for c in "${cidrs[@]}" "$docker_subnet"; do
  valid_cidr "$c" || die "invalid CIDR '$c' (want a.b.c.d/1-32)"
done

ruleset() {
  echo "*filter"
  echo ":$chain - [0:0]"
  echo "-A $chain -i lo -j RETURN"
  echo "-A $chain -s $docker_subnet -p tcp -m multiport --dports $ports -j RETURN"
  for c in "${cidrs[@]}"; do
    echo "-A $chain -s $c -p tcp -m multiport --dports $ports -j RETURN"
  done
  echo "-A $chain -p tcp -m multiport --dports $ports -j DROP"
  echo "COMMIT"
}

echo "firewall-rules: admitting ${cidrs[*]} (and loopback, $docker_subnet) to tcp ports $ports; dropping the rest"
echo "firewall-rules: chain $chain, replaced atomically:"
ruleset | sed 's/^/  /'
echo "firewall-rules: hooks: INPUT -j $chain; DOCKER-USER -j $chain (when Docker's chain exists)"
if $dry_run; then
  echo "firewall-rules: dry run: nothing changed"
  exit 0
fi

ruleset | iptables-restore --noflush
hook() {
  iptables -w -C "$1" -j "$chain" 2>/dev/null || iptables -w -I "$1" 1 -j "$chain"
}
hook INPUT
if iptables -w -n -L DOCKER-USER >/dev/null 2>&1; then
  hook DOCKER-USER
else
  echo "firewall-rules: no DOCKER-USER chain (Docker not running?): run again after Docker starts" >&2
fi
echo "firewall-rules: applied"
