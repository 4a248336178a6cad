#!/usr/bin/env bash
# Builds the controller and worker images on a machine with Docker but no registry:
# a Debian root filesystem made with debootstrap and `docker import`ed as the base,
# then binaries built on this host copied on top. The worker image made here has no
# CUDA libraries (use it with --emulate or --cpu); the GPU image comes from Dockerfile.
#
#   deploy/container/local-image.sh [BIN_DIR]      # default BIN_DIR: target/release
#
# Produces clockwork-base:bookworm (cached: delete it to rebuild), clockwork-controller:local
# and clockwork-worker:local. Needs root (debootstrap) and a Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin_dir=${1:-target/release}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for b in clockwork-controller clockwork-worker clockwork-bench; do
  [[ -x "$bin_dir/$b" ]] || { echo "missing $bin_dir/$b: build it first (cargo build --release)" >&2; exit 1; }
done

if ! docker image inspect clockwork-base:bookworm >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "== debootstrap bookworm (minbase + curl) from $mirror"
  debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  chroot "$rootfs" useradd --system --uid 10001 --no-create-home clockwork
  tar -C "$rootfs" -c . | docker import - clockwork-base:bookworm >/dev/null
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for b in clockwork-controller clockwork-worker clockwork-bench; do
  cp "$bin_dir/$b" "$ctx/"
  strip "$ctx/$b" 2>/dev/null || true
done
build() { # name entrypoint ports
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM clockwork-base:bookworm
COPY $2 /usr/local/bin/
$( [[ $1 == controller ]] && echo "COPY clockwork-bench /usr/local/bin/" )
USER 10001
EXPOSE $3
ENTRYPOINT ["/usr/local/bin/$2"]
DOCKERFILE
  docker build -q -t "clockwork-$1:local" "$ctx" >/dev/null
  echo "built clockwork-$1:local"
}
build controller clockwork-controller "12346 8000"
build worker clockwork-worker 12345
