#!/usr/bin/env bash
# System programs of the team stack (`make services`) and of its tests: PostgreSQL (MLflow's
# backend store) and OpenSSH's server (the DVC remote). Installed by Debian package name when this
# is a root Debian/Ubuntu machine (CI, containers); elsewhere one line says what is missing, and the
# tests that need it skip with that line. Nothing else in the project needs them.
set -uo pipefail
need=()
pg_found() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
pg_found || need+=(postgresql)
{ command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd; } || need+=(openssh-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/tensorcost-apt.log 2>&1 \
    || { apt-get update -q >>/tmp/tensorcost-apt.log 2>&1 && apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/tensorcost-apt.log 2>&1; } \
    || echo "system-deps: apt-get install ${need[*]} failed (log /tmp/tensorcost-apt.log): the team-stack tests will skip"
else
  echo "system-deps: ${need[*]} not installed and this is not a root apt machine: the team-stack tests will skip (install the packages to run them)"
fi
exit 0
