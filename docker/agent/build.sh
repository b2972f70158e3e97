#!/usr/bin/env bash
# Builds the reference agent image with the classic builder, no registry:
#   docker/agent/build.sh [--base IMAGE] [--tag TAG] [--version V]
# Base: node:20-slim if present locally, else the host-built hangar/node-base.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base="" tag="hangar/agent:latest" version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
version=${version:-$(node -p "require('$here/changelog.json').version")}
if [ -z "$base" ]; then
  if docker image inspect node:20-slim >/dev/null 2>&1; then base=node:20-slim
  else base=$("$here/../base/build-base.sh"); fi
fi
changes=$(node -p "require('$here/changelog.json').changes.join('; ')")
DOCKER_BUILDKIT=0 docker build -q \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "AGENT_VERSION=$version" \
  --build-arg "AGENT_CHANGELOG=$changes" \
  -t "$tag" -t "${tag%:*}:$version" "$here" >/dev/null
docker image inspect "$tag" --format '{{.Id}}'
