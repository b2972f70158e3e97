#!/bin/sh
# One image, one role per container, chosen by the command:
#   api            the HTTP API and web UI (dist/api/server.js)
#   worker         the control worker: workflows and database activities; no Docker socket
#   docker-worker  the Docker-host worker: the only role that needs the socket
#                  (run as root with CAP_NET_ADMIN in the host's network namespace:
#                  it applies the agents' egress policy with iptables)
#   migrate        applies pending migrations (HANGAR_MIGRATION_DATABASE_URL, else
#                  DATABASE_URL) and exits
#   hangar ARGS    the admin CLI (setup-code, admin reset-password, secrets rotate, …)
# Any secret may come from a file instead: VAR_FILE=/run/secrets/x sets VAR to
# the file's first line (Docker and compose secrets).
set -eu

for var in HANGAR_SECRET_KEY DATABASE_URL HANGAR_MIGRATION_DATABASE_URL SMTP_URL; do
  eval "file=\${${var}_FILE:-}"
  if [ -n "$file" ]; then
    IFS= read -r value <"$file" || [ -n "${value:-}" ] || { echo "entrypoint: ${var}_FILE ($file) is empty" >&2; exit 1; }
    export "$var=$value"
    unset value
  fi
done

role=${1:-api}
[ $# -gt 0 ] && shift
case "$role" in
  api) exec node /app/dist/api/server.js "$@" ;;
  worker) export HANGAR_WORKER_ROLE=control; exec node /app/dist/worker/main.js "$@" ;;
  docker-worker) export HANGAR_WORKER_ROLE=docker; exec node /app/dist/worker/main.js "$@" ;;
  migrate)
    export DATABASE_URL="${HANGAR_MIGRATION_DATABASE_URL:-${DATABASE_URL:-}}"
    [ -n "$DATABASE_URL" ] || { echo "entrypoint: migrate needs HANGAR_MIGRATION_DATABASE_URL or DATABASE_URL" >&2; exit 1; }
    exec node /app/dist/prisma/migrate.cli.js deploy "$@" ;;
  hangar) exec node /app/dist/bin/hangar.cli.js "$@" ;;
  *) echo "entrypoint: unknown role '$role' (api, worker, docker-worker, migrate, hangar)" >&2; exit 2 ;;
esac
