#!/bin/sh
# The part of the official postgres entrypoint that compose.yaml relies on: on an empty PGDATA,
# initdb with POSTGRES_USER and POSTGRES_PASSWORD(_FILE), listen on every address with
# scram-sha-256 for network clients, create POSTGRES_DB; then run the server. Runs as the
# postgres user (compose.yaml sets `user:`), never as root.
set -eu
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required}" > "$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  pg_ctl --wait --silent -o "-c listen_addresses=''" start
  if [ "$database" != postgres ]; then
    psql --quiet -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
      -c "CREATE DATABASE \"$database\""
  fi
  pg_ctl --wait --silent -m fast stop
  echo "stand-in postgres: initialised $PGDATA"
fi
exec "$@"
