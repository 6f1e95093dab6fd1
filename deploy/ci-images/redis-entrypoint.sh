#!/bin/sh
# The official image builds Redis with protected mode off (it listens for other containers
# without a password); Debian's keeps it on, so the stand-in turns it off on the command line.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
