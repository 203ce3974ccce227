#!/usr/bin/env bash
# Installs the Debian packages Driftwatch runs for real: Prometheus (prometheus, promtool),
# Alertmanager (prometheus-alertmanager, amtool) and PostgreSQL (postgresql: the production-like
# backend of `driftwatch up --backend postgres` and its tests; Debian keeps initdb and pg_ctl in
# /usr/lib/postgresql/<major>/bin), and Node.js with npm for the Kubernetes CRD checks. Does nothing
# when they are already there.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
# Node.js and npm: `make install` fetches the prometheus-operator CRD validators (deploy/kubernetes/validation).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "driftwatch: missing Debian packages: ${missing[*]}. Run as root: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "driftwatch: installing ${missing[*]}" >&2
sh -c "$cmd" >/dev/null
