#!/usr/bin/env bash
# Builds vigil_<version>_amd64.deb for boxes that keep their own OS: vigild and vigilctl, the
# systemd unit, the default config, the logrotate config, man pages and shell completions, with
# the shared libraries the binaries link declared as dependencies (dpkg-shlibdeps).
#
#   images/deb.sh [--profile release|debug] [--out DIR] [--version VERSION]
#
# DEB_MAINTAINER sets the Maintainer field.
# The binaries come from target/<profile>/ ($CARGO_TARGET_DIR when set; built first when
# missing). The default profile is
# release; tests package the debug build to check the package's shape quickly.
set -euo pipefail

cd "$(dirname "$0")/.."
profile=release
out=target/deb
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
target_dir=${CARGO_TARGET_DIR:-target}
case "$profile" in
  release) cargo_flags=(--release); dir=$target_dir/release ;;
  debug) cargo_flags=(); dir=$target_dir/debug ;;
  *) echo "deb: --profile must be release or debug, not $profile" >&2; exit 2 ;;
esac
case "$version" in
  ''|*[!0-9A-Za-z.+~-]*) echo "deb: --version $version is not a Debian version" >&2; exit 2 ;;
esac
for tool in dpkg-deb dpkg-shlibdeps gzip; do
  command -v "$tool" >/dev/null || { echo "deb: $tool is missing: apt-get install dpkg-dev" >&2; exit 1; }
done

if [ ! -x "$dir/vigild" ] || [ ! -x "$dir/vigilctl" ]; then
  echo "deb: building vigild and vigilctl ($profile)"
  cargo build "${cargo_flags[@]}" --locked -p vigil-dataplane -p vigil-ctl --bins
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
echo "deb: staging in $root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/vigil" "$root/etc/logrotate.d" "$root/usr/share/doc/vigil/examples" \
  "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
install -m 0755 "$dir/vigild" "$dir/vigilctl" "$root/usr/bin/"
if [ "$profile" = release ]; then
  strip --strip-unneeded "$root/usr/bin/vigild" "$root/usr/bin/vigilctl"
fi
install -m 0644 images/rootfs/etc/systemd/system/vigild.service "$root/lib/systemd/system/"
install -m 0644 images/rootfs/etc/logrotate.d/vigild "$root/etc/logrotate.d/vigild"
install -m 0640 config/vigild.toml "$root/etc/vigil/vigild.toml"
install -m 0644 config/bots.txt "$root/etc/vigil/bots.txt"
install -m 0644 config/vigild.toml "$root/usr/share/doc/vigil/examples/vigild.toml"
install -m 0644 README.md "$root/usr/share/doc/vigil/README.md"
cp -r docs "$root/usr/share/doc/vigil/docs"
find "$root/usr/share/doc/vigil/docs" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
cat > "$root/usr/share/doc/vigil/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vigil

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY

echo "deb: man pages and completions from vigilctl itself"
"$dir/vigilctl" man --out "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1
"$dir/vigilctl" completion bash > "$root/usr/share/bash-completion/completions/vigilctl"
"$dir/vigilctl" completion zsh > "$root/usr/share/zsh/vendor-completions/_vigilctl"
"$dir/vigilctl" completion fish > "$root/usr/share/fish/vendor_completions.d/vigilctl.fish"
find "$root/usr/share" -type f -exec chmod 0644 {} +

echo "deb: library dependencies (dpkg-shlibdeps)"
install -d "$work/src/debian"
printf 'Source: vigil\n\nPackage: vigil\nArchitecture: amd64\n' > "$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/bin/vigild" -e"$root/usr/bin/vigilctl" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: vigil
Version: $version
Architecture: amd64
Maintainer: ${DEB_MAINTAINER:-Vigil maintainers <root@localhost>}
Installed-Size: $size_kb
Depends: $depends
Recommends: logrotate, tpm2-tools, nftables
Section: net
Priority: optional
Description: API security gateway: XDP filtering, TLS with TPM keys, OpenAPI enforcement
 vigild drops blocked traffic in XDP, terminates TLS 1.3 with keys its TPM protects, checks
 every request against the API's OpenAPI description, enforces identity, object ownership
 and rate limits, and logs every decision. vigilctl operates it.
CONTROL
printf '/etc/vigil/vigild.toml\n/etc/vigil/bots.txt\n/etc/logrotate.d/vigild\n' > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  install -d -m 0700 /var/lib/vigil /var/log/vigil
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
  echo "vigil: edit /etc/vigil/vigild.toml, check it with 'vigild --check', then" \
       "'systemctl enable --now vigild'"
fi
exit 0
POST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
# The XDP program stays attached when vigild stops (drops continue); on removal the operator
# detaches it with 'vigilctl xdp detach --yes' first if they want it gone.
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop vigild.service || true
fi
exit 0
PRERM
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
  rm -rf /var/log/vigil
  echo "vigil: /var/lib/vigil (keys, shadow inventory) is kept; remove it by hand if intended"
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/vigil_${version}_amd64.deb"
echo "deb: packing $deb"
# xz for what ships; a quick gzip for the debug builds tests make.
if [ "$profile" = release ]; then compress=(-Zxz); else compress=(-Zgzip -z1); fi
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "deb: done"
echo "  file:     $deb ($(du -h "$deb" | cut -f1))"
echo "  version:  $version ($profile build)"
echo "  depends:  $depends"
echo "  sha256:   $(sha256sum "$deb" | cut -d' ' -f1)"
