#!/usr/bin/env bash
# Builds the reference agent image with the classic builder and no registry.
#
#   docker/agent/build.sh [--base IMAGE] [--tag TAG] [--version V]
#
# --base     default: node:20-slim if it is present locally, else
#            hangar/node-base:local (built by docker/base/build-base.sh)
# --tag      default: hangar/agent:latest
# --version  default: "version" in changelog.json
# A :latest (or untagged) TAG is also tagged <name>:<version>; any other tag
# is left alone so a test image never moves the shared version tag.
# Prints the image id on stdout. Re-running with unchanged inputs is a cache
# hit and yields the same id.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
base="" tag="hangar/agent:latest" version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base|--tag|--version)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case "$1" in --base) base=$2 ;; --tag) tag=$2 ;; --version) version=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found"
command -v node >/dev/null || die "node is needed to read changelog.json"
# One line per change, joined: a label must stay short and single-line.
read_changelog() { node -e 'const c = require(process.argv[1]); console.log(process.argv[2] === "v" ? c.version : c.changes.join("; "))' "$here/changelog.json" "$1"; }
version=${version:-$(read_changelog v)}
changes=$(read_changelog c)
[[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "version '$version' is not a valid image tag"

if [ -z "$base" ]; then
  if docker image inspect node:20-slim >/dev/null 2>&1; then
    base=node:20-slim
  else
    "$here/../base/build-base.sh" >/dev/null
    base=hangar/node-base:local
  fi
fi

# The repository part of TAG: strip a trailing :tag but not a registry :port.
name=$tag
if [[ ${tag##*/} == *:* ]]; then name=${tag%:*}; else tag=$tag:latest; fi
names=("$tag")
if [ "$tag" = "$name:latest" ]; then names+=("$name:$version"); fi
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done

echo "build.sh: building ${names[*]} from $base (version $version)" >&2
# -q prints only the image id; on failure the builder's error still reaches stderr.
id=$(DOCKER_BUILDKIT=0 docker build -q \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "AGENT_VERSION=$version" \
  --build-arg "AGENT_CHANGELOG=$changes" \
  "${tags[@]}" "$here") || die "docker build failed"
echo "$id"
