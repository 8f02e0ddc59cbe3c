#!/usr/bin/env bash
# What `make test` needs from the system besides Python, Java and Maven: Debian's chromium (the
# weekly report's HTML is rendered headless in a test), Debian's prometheus (a test scrapes a
# worker with it and checks the shipped config with its promtool), Debian's
# prometheus-alertmanager (the Alertmanager receiver is tested against a real Alertmanager on
# 127.0.0.1) and a docker compose client (the compose file is validated offline; no engine
# needed). Installs what is missing through apt when it can (root, or passwordless sudo);
# otherwise says exactly what to install and exits 1.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
  missing+=(prometheus-alertmanager)
fi
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "make test needs: ${missing[*]} (Debian packages). Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make test needs: ${missing[*]}; this system has no apt-get: install them with its package manager" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt) for the report, compose, dashboard and Alertmanager tests"
"${as_root[@]}" apt-get update -qq
others=()
for package in "${missing[@]}"; do [ "$package" = prometheus ] || others+=("$package"); done
if [ ${#others[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${others[@]}" >/dev/null
fi
if [ ${#others[@]} -lt ${#missing[@]} ]; then
  # without its recommends (node and IPMI exporters): the tests use only prometheus and promtool
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
