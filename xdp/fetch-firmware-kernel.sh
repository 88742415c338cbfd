#!/bin/sh
# Fetches the kernel the firmware image ships (Debian's linux-image-amd64, as images/build.sh
# installs it from this machine's apt sources) and a static busybox, for xdp/tests/
# firmware_kernel.rs: it boots that kernel under QEMU and loads both builds of the XDP program
# there, so a program the image's verifier refuses fails here, not on a box.
# Idempotent: does nothing when the packages of the current candidate are already unpacked.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/target/test-data/firmware-kernel"

KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
    echo "error: apt knows no linux-image-amd64 dependency; run apt-get update" >&2
    exit 1
fi
KVER=$(apt-cache policy "$KPKG" | awk '/Candidate:/{print $2}')
STAMP="$DEST/.complete-$KPKG-$KVER"
if [ -f "$STAMP" ]; then
    echo "firmware kernel already present: $DEST ($KPKG $KVER)"
    exit 0
fi

WORK=$(mktemp -d)
chmod 755 "$WORK" # apt-get download fetches as its own user
trap 'rm -rf "$WORK"' EXIT INT TERM
(cd "$WORK" && apt-get download -q "$KPKG" busybox-static >/dev/null)
for deb in "$WORK"/*.deb; do
    dpkg-deb -x "$deb" "$WORK/x"
done
VMLINUZ=$(ls "$WORK"/x/boot/vmlinuz-* | head -n 1)
if [ ! -f "$VMLINUZ" ] || [ ! -x "$WORK/x/bin/busybox" ]; then
    echo "error: $KPKG or busybox-static has no vmlinuz or bin/busybox; the package layout changed" >&2
    exit 1
fi

rm -rf "$DEST"
mkdir -p "$DEST"
cp "$VMLINUZ" "$DEST/vmlinuz"
cp "$WORK/x/bin/busybox" "$DEST/busybox"
echo "$KPKG $KVER" > "$DEST/version"
touch "$STAMP"
echo "firmware kernel installed: $DEST ($KPKG $KVER)"
