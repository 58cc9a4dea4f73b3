#!/usr/bin/env bash
# Fails with a clear message when the PostgreSQL used by the tests is unreachable.
# `make test` runs this first unless AOS_TEST_BACKENDS=sqlite says not to test PostgreSQL.
set -euo pipefail
url="${AOS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
rest="${url#*://}"          # user@host:port/db?...
rest="${rest#*@}"           # host:port/db?...
hostport="${rest%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5432
if (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null; then
  exit 0
fi
cat >&2 <<MSG
error: PostgreSQL for the tests is unreachable at ${host}:${port}
       (from AOS_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
       Start PostgreSQL, point AOS_TEST_DATABASE_URL at one, or test SQLite only with:
         AOS_TEST_BACKENDS=sqlite make test
MSG
exit 1
