#!/usr/bin/env bash
# Installs the Debian packages Driftwatch runs for real: Prometheus (prometheus, promtool),
# Alertmanager (prometheus-alertmanager, amtool), PostgreSQL (postgresql: the production-like
# backend of `driftwatch up --backend postgres` and its tests; Debian keeps initdb and pg_ctl in
# /usr/lib/postgresql/<major>/bin), Node.js with npm for the Kubernetes CRD checks, nginx (the load
# balancer in front of serving replicas, `driftwatch up --replicas N`) and wrk (the HTTP load
# generator of benchmarks/bench_serving.py and bench_fleet.py). Does nothing when they are already
# there.
#
# Driftwatch runs nginx (and its own PostgreSQL clusters) as plain processes with generated
# configurations on loopback ports, never as system services: the packages' own services are kept
# from starting during the install (a temporary policy-rc.d answering "not allowed", unless the
# machine already has one), so nothing listens on port 80 or 5432.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
# Node.js and npm: `make install` fetches the prometheus-operator CRD validators (deploy/kubernetes/validation).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "driftwatch: missing Debian packages: ${missing[*]}. Run as root: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "driftwatch: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
sh -c "$cmd" >/dev/null
