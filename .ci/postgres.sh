#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL cluster: `.ci/postgres.sh python -m pytest -q`.
#
# The cluster lives in a fresh temp folder, listens on a Unix socket there only (no TCP port, so
# nothing else on the machine can reach it or clash with it), trusts local connections, and is
# stopped and deleted when the command ends, however it ends. initdb refuses to run as root, so
# as root the server runs as Debian's `postgres` user (or a system user made for it). The command
# gets MODELSMITH_TEST_POSTGRES_URL, the URL of the cluster's `postgres` database as a superuser;
# the tests create and drop one database per test there. Needs Debian's `postgresql` package.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "postgres.sh: PostgreSQL is not installed; run: apt-get install -y postgresql" >&2
    exit 2
fi

folder=$(mktemp -d /tmp/modelsmith-pg.XXXXXX)  # short: a socket path must stay under ~100 bytes
as_owner=()
if [ "$(id -u)" = "0" ]; then
    owner=postgres
    if ! id -u "$owner" >/dev/null 2>&1; then
        owner=modelsmith-pg
        id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
    fi
    chown "$owner" "$folder"
    as_owner=(runuser -u "$owner" --)
fi
chmod 755 "$folder"  # the socket must be reachable by the user running the tests

stop_cluster() {
    status=$?
    (cd / && "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -m immediate -w stop >/dev/null 2>&1) || true
    rm -rf "$folder"
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Durability is pointless for a cluster deleted at exit: fsync off makes CREATE DATABASE per test cheap.
(cd / && "${as_owner[@]}" "$bindir/initdb" -D "$folder/data" -U modelsmith --auth=trust -E UTF8 --no-sync \
    >"$folder/initdb.log" 2>&1) || { cat "$folder/initdb.log" >&2; exit 1; }
(cd / && "${as_owner[@]}" "$bindir/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w -t 60 \
    -o "-k $folder -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null) || { cat "$folder/server.log" >&2; exit 1; }

export MODELSMITH_TEST_POSTGRES_URL="postgresql+psycopg://modelsmith@/postgres?host=$folder"
echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $folder (stopped at exit)" >&2
"$@"
