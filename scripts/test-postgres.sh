#!/usr/bin/env bash
# Starts/stops a throw-away Postgres for CI from the machine's binaries.
# Postgres refuses to run as root, so as root it runs as the postgres (or nobody) user.
set -euo pipefail
dir=${GYRE_CI_PG_DIR:-/tmp/gyre-ci-postgres}
port=${GYRE_CI_PG_PORT:-55439}
bin=$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
runas=()
if [ "$(id -u)" = 0 ]; then
  user=postgres; id postgres >/dev/null 2>&1 || user=nobody
  runas=(runuser -u "$user" --)
fi
case "${1:-}" in
  start)
    # A fresh cluster every run: nothing left by an earlier run (a server
    # still up, a stale pid file) can get in the way.
    if [ -f "$dir/data/PG_VERSION" ]; then
      "${runas[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"; mkdir -p "$dir"
    [ ${#runas[@]} -gt 0 ] && chown "$user" "$dir"
    "${runas[@]}" "$bin/initdb" -D "$dir/data" -U gyre --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    "${runas[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null \
      || { tail -n 30 "$dir/postgres.log" >&2; exit 1; }
    ;;
  stop) "${runas[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null ;;
  url) echo "postgres://gyre@127.0.0.1:$port/postgres?sslmode=disable" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
