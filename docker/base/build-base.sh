#!/usr/bin/env bash
# Builds a Node base image without any registry: a tiny root fs made of this
# host's own Node binary plus the shared libraries it links, fed to
# `docker import`. The agent image uses it when node:20-slim cannot be pulled.
#
#   docker/base/build-base.sh [--force] [--shell] [--no-local]
#
# Tags hangar/node-base:<node version> and hangar/node-base:local, and prints
# the versioned tag on stdout (everything else goes to stderr). Skips the build
# when the versioned tag already exists, unless --force.
# --shell     also copy the host's /bin/dash in as /bin/sh (an entrypoint that
#             must `exec` needs one); the tag becomes <node version>-sh
# --no-local  leave hangar/node-base:local alone (another Node's base, e.g. the
#             OpenClaw image's Node 24, must not move the reference image's base)
# Env: NODE_BIN (default: the `node` on PATH).
set -euo pipefail

die() { echo "build-base: $*" >&2; exit 1; }

force=0 shell=0 local_tag=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --shell) shell=1 ;;
    --no-local) local_tag=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

command -v docker >/dev/null || die "docker CLI not found"
command -v ldd >/dev/null || die "ldd not found (Debian: libc-bin)"
node_bin=${NODE_BIN:-$(command -v node || true)}
[ -n "$node_bin" ] || die "no node on PATH; set NODE_BIN"
node_bin=$(readlink -f "$node_bin")
version=$("$node_bin" -p 'process.versions.node')
tag="hangar/node-base:${version}"
[ "$shell" = 1 ] && tag="${tag}-sh"

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  # Re-point :local at the current host Node (it may have been upgraded).
  [ "$local_tag" = 1 ] && docker tag "$tag" hangar/node-base:local
  echo "$tag"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# Copies a host file into the root fs at the same path, following symlinks
# (the image needs the bytes, not the host's symlink layout).
copy_in() {
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}

mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp -L "$node_bin" "$root/usr/local/bin/node"

# Every library node links, and the dynamic loader, at their host paths.
# ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the
# loader; POSIX character classes because Debian's default awk is mawk.
libs=$(ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if ldd "$node_bin" | grep -q 'not found'; then
  die "ldd reports missing libraries for $node_bin"
fi
echo "$libs" | grep -q 'ld-linux\|ld-musl\|ld64' || die "no dynamic loader found in ldd output (static node?)"
for lib in $libs; do copy_in "$lib"; done

# getaddrinfo() (what fetch uses to resolve host.docker.internal) dlopens the
# NSS modules; glibc >= 2.34 has them built in, older hosts ship them apart.
libdir=$(dirname "$(echo "$libs" | grep '/libc\.so' | head -n1)")
for lib in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
  [ -e "$libdir/$lib" ] && copy_in "$libdir/$lib"
done
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

if [ "$shell" = 1 ]; then
  sh_bin=$(readlink -f /bin/dash 2>/dev/null || true)
  [ -x "$sh_bin" ] || die "--shell needs /bin/dash on the host (Debian: dash)"
  mkdir -p "$root/bin"
  cp -L "$sh_bin" "$root/bin/sh"
  # dash links only libc, already copied for node; check rather than assume.
  for lib in $(ldd "$sh_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    [ -e "$root$lib" ] || copy_in "$lib"
  done
fi

# Node ships its own root CAs; the host bundle adds any private CA the host
# trusts (a self-hosted model server behind an internal TLS CA).
change_ca=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  change_ca=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt')
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
agent:x:10001:10001:agent:/tmp:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
agent:x:10001:
nogroup:x:65534:
EOF

echo "build-base: importing $tag from $node_bin ($(du -sh "$root" | cut -f1))" >&2
# Every file root-owned in the image whoever runs this; ownership of /app and
# /data is the agent Dockerfile's business.
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV HOME=/tmp' \
  ${change_ca[@]+"${change_ca[@]}"} \
  --change "LABEL dev.hangar.node-base=${version}" \
  --change 'USER 10001' \
  - "$tag" >/dev/null

# Fail here, not at agent start, if a library is missing.
got=$(docker run --rm --network none "$tag" node -p 'process.versions.node') \
  || { docker image rm "$tag" >/dev/null 2>&1 || true; die "imported image cannot run node"; }
[ "$got" = "$version" ] || die "image runs node $got, expected $version"

if [ "$local_tag" = 1 ]; then docker tag "$tag" hangar/node-base:local; fi
echo "$tag"
