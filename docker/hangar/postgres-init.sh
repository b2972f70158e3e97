#!/bin/sh
# The bundled Postgres's first start (docker/compose.yaml, --profile bundled):
# the application login Hangar's processes use. hangar_app is the group the
# row-level-security migration grants the tables to (it keeps an existing
# one); the login is never a superuser and never bypasses RLS.
set -eu
IFS= read -r app_password </run/secrets/postgres_app_password || [ -n "${app_password:-}" ]
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$app_password" <<'SQL'
CREATE ROLE hangar_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE hangar LOGIN PASSWORD :'pw' NOSUPERUSER NOBYPASSRLS IN ROLE hangar_app;
SQL
