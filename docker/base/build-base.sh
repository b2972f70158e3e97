#!/usr/bin/env bash
# Builds a local Node base image with no registry: a tiny root fs made of this
# host's own Node binary and the shared libraries it links, imported with
# `docker import`. Used when node:20-slim cannot be pulled.
#   docker/base/build-base.sh [--force]   → prints the image tag
set -euo pipefail
force=0
[ "${1:-}" = "--force" ] && force=1

node_bin=$(readlink -f "$(command -v node)")
version=$(node -p 'process.versions.node')
tag="hangar/node-base:${version}"

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" hangar/node-base:local
  echo "$tag"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{usr/local/bin,etc,tmp,data,app,etc/ssl/certs}
chmod 1777 "$root/tmp"
cp "$node_bin" "$root/usr/local/bin/node"

# The dynamic loader and every library node links, at the same paths.
for lib in $(ldd "$node_bin" | awk '/=>/ {print $3} /^\s*\/.*ld-linux/ {print $1}'); do
  [ -f "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# Name resolution for host.docker.internal and DNS (glibc loads these at run time).
for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
  [ -f "$lib" ] && { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
done
[ -d /lib64 ] && mkdir -p "$root/lib64" && [ -e /lib64/ld-linux-x86-64.so.2 ] && cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
agent:x:10001:10001:agent:/app:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
agent:x:10001:
nogroup:x:65534:
GROUP
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
chown 10001:10001 "$root/data" "$root/app"

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV NODE_ENV=production' \
  --change 'USER 10001' \
  --change 'WORKDIR /app' \
  - "$tag" >/dev/null
docker tag "$tag" hangar/node-base:local
echo "$tag"
