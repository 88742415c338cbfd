#!/usr/bin/env bash
# Builds Vigil's firmware: a bootable x86_64 UEFI disk image vigil-<version>.img and an update
# bundle vigil-<version>.raucb.
#
#   images/build.sh [--profile release|debug] [--out DIR] [--version VERSION]
#                   [--signing-cert PEM --signing-key PEM --keyring PEM] [--policy-key PEM]
#                   [--config FILE] [--upstream URL] [--boot-attempts N]
#                   [--compatible NAME] [--bundle-only] [--base-tar FILE] [--dev-console]
#
# Disk (GPT): ESP (GRUB EFI, grub.cfg, grubenv) | rootfs A | rootfs B | data (ext4 mounted at
# /var/lib/vigil: keys, fleet key, shadow inventory, audit log, RAUC status). Each rootfs slot holds one
# read-only squashfs with its own kernel and initramfs; GRUB reads them from the slot and picks
# the slot from grubenv (ORDER, <slot>_OK, <slot>_TRY), as RAUC's GRUB integration expects: a
# slot gets --boot-attempts boots (default 3) after an update; if vigil-health.service has not
# marked it good by then, GRUB boots the other slot by itself.
#
# Without --signing-cert/--signing-key a development CA and signing key are made in OUT/keys and
# the build says so: bundles signed with them install only on images built with them. The same
# holds for --policy-key, the P-256 key that signs each image's expected boot measurements
# (PCR 9): keys sealed on a box unseal only under images whose policy it signed.
# --config bakes another vigild.toml into /etc/vigil (default images/box/vigild.toml);
# @UPSTREAM@ in it becomes --upstream (default http://10.0.2.2:8080, the host as QEMU's user
# network sees it). --compatible names the product bundles must be made for (default
# vigil-x86_64). --bundle-only makes the update bundle and no disk image. --base-tar reuses a
# root filesystem tarball an earlier step of the same run made with mmdebstrap
# (OUT/cache/base.tar). --dev-console adds a root shell without login on the second serial
# port (ttyS1): for development and the image tests only, never for a box in the field.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
profile=release
out=target/image
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
cert='' key='' keyring='' base_tar='' policy_key=''
upstream=http://10.0.2.2:8080
config=images/box/vigild.toml
attempts=3
compatible=vigil-x86_64
bundle_only=0
dev_console=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --signing-cert) cert=$2; shift 2 ;;
    --signing-key) key=$2; shift 2 ;;
    --keyring) keyring=$2; shift 2 ;;
    --policy-key) policy_key=$2; shift 2 ;;
    --upstream) upstream=$2; shift 2 ;;
    --base-tar) base_tar=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --boot-attempts) attempts=$2; shift 2 ;;
    --compatible) compatible=$2; shift 2 ;;
    --bundle-only) bundle_only=1; shift ;;
    --dev-console) dev_console=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
target_dir=${CARGO_TARGET_DIR:-target}
case "$profile" in
  release) cargo_flags=(--release); bindir=$target_dir/release ;;
  debug) cargo_flags=(); bindir=$target_dir/debug ;;
  *) echo "image: --profile must be release or debug, not $profile" >&2; exit 2 ;;
esac
case "$version" in
  ''|*[!0-9A-Za-z.+~-]*) echo "image: --version $version: use digits, letters, . + ~ -" >&2; exit 2 ;;
esac
case "$attempts" in
  [1-9]) ;;
  *) echo "image: --boot-attempts must be 1 to 9, not $attempts" >&2; exit 2 ;;
esac
case "$compatible" in
  ''|*[!0-9A-Za-z._-]*) echo "image: --compatible $compatible: use digits, letters, . _ -" >&2; exit 2 ;;
esac
if [ ! -f "$config" ]; then
  echo "image: --config $config: no such file" >&2; exit 2
fi
if [ -n "$cert$key" ] && { [ -z "$cert" ] || [ -z "$key" ]; }; then
  echo "image: --signing-cert and --signing-key go together" >&2; exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "image: run as root (mmdebstrap, file ownership in the root filesystem)" >&2; exit 1
fi
for tool in mmdebstrap mksquashfs mkfs.vfat mcopy sgdisk mkfs.ext4 grub-mkimage grub-editenv rauc openssl; do
  command -v "$tool" >/dev/null || {
    echo "image: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=$out/cache
mkdir -p "$cache"
step() { printf '\nimage: [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
started=$(date +%s)

# 1. Binaries.
if [ ! -x "$bindir/vigild" ] || [ ! -x "$bindir/vigilctl" ]; then
  step "building vigild and vigilctl ($profile)"
  cargo build "${cargo_flags[@]}" --locked -p vigil-dataplane -p vigil-ctl --bins
fi

# 2. Signing keys.
if [ -z "$cert" ]; then
  cert=$out/keys/dev-signing.pem key=$out/keys/dev-signing.key keyring=$out/keys/dev-ca.pem
  if [ ! -f "$cert" ]; then
    mkdir -p "$out/keys"
    chmod 0700 "$out/keys"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/O=Vigil development/CN=Vigil development CA" -keyout "$out/keys/dev-ca.key" \
      -out "$keyring" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=Vigil development/CN=Vigil development bundle signing" -keyout "$key" \
      -out "$out/keys/dev-signing.csr" 2>/dev/null
    openssl x509 -req -in "$out/keys/dev-signing.csr" -CA "$keyring" -CAkey "$out/keys/dev-ca.key" \
      -CAcreateserial -days 3650 -out "$cert" \
      -extfile <(printf 'keyUsage=critical,digitalSignature\n') 2>/dev/null
  fi
  echo "image: ******************************************************************"
  echo "image: DEVELOPMENT SIGNING KEY ($out/keys): not for production boxes."
  echo "image: Pass --signing-cert, --signing-key and --keyring for a real release."
  echo "image: ******************************************************************"
elif [ -z "$keyring" ]; then
  echo "image: --keyring (the CA that signed --signing-cert) is required with production keys" >&2
  exit 2
fi

if [ -z "$policy_key" ]; then
  policy_key=$out/keys/dev-pcr-policy.key
  if [ ! -f "$policy_key" ]; then
    mkdir -p "$out/keys"
    chmod 0700 "$out/keys"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$policy_key" 2>/dev/null
  fi
  echo "image: DEVELOPMENT PCR-POLICY KEY ($policy_key): pass --policy-key for a release."
elif [ ! -f "$policy_key" ]; then
  echo "image: --policy-key $policy_key: no such file" >&2; exit 2
fi

# 3. The root filesystem.
packages=systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,kmod,rauc,iproute2
packages=$packages,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-mu0,libtss2-tcti-device0
packages=$packages,e2fsprogs,ca-certificates,rauc-service,grub-common,nftables
if [ -z "$base_tar" ]; then
  base_tar=$cache/base.tar
  if [ ! -f "$base_tar" ]; then
    step "downloading and installing Debian bookworm packages (mmdebstrap, a few minutes)"
    # No mirror argument: mmdebstrap takes the host's apt sources.
    mmdebstrap --variant=minbase --format=tar --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      bookworm "$base_tar.part" < /dev/null
    mv "$base_tar.part" "$base_tar"
  fi
fi
work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"
step "customising the root filesystem"
tar -C "$rootfs" -xf "$base_tar"
install -m 0755 "$bindir/vigild" "$bindir/vigilctl" "$rootfs/usr/bin/"
# Symbols are no use on a box, and a debug build's are most of its size.
strip --strip-unneeded "$rootfs/usr/bin/vigild" "$rootfs/usr/bin/vigilctl"
cp -a images/rootfs/. "$rootfs/"
install -d -m 0755 "$rootfs/etc/vigil" "$rootfs/etc/rauc" "$rootfs/boot/efi"
install -d -m 0700 "$rootfs/var/lib/vigil"
install -m 0644 "$keyring" "$rootfs/etc/rauc/ca.pem"
sed "s|@UPSTREAM@|$upstream|" "$config" > "$rootfs/etc/vigil/vigild.toml"
sed "s|@COMPATIBLE@|$compatible|" images/box/system.conf > "$rootfs/etc/rauc/system.conf"
install -m 0644 images/box/fstab "$rootfs/etc/fstab"
install -d "$rootfs/usr/lib/vigil"
install -m 0755 images/box/vigil-health images/box/vigil-firstboot "$rootfs/usr/lib/vigil/"
printf 'vigil\n' > "$rootfs/etc/hostname"
printf '%s\n' "$version" > "$rootfs/etc/vigil/version"
# An empty machine-id: systemd makes one at boot on a read-only root.
: > "$rootfs/etc/machine-id"
chroot "$rootfs" systemctl enable vigild.service vigil-health.service vigil-firstboot.service \
  systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
chroot "$rootfs" systemctl mask systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
  >/dev/null 2>&1 || true
if [ "$dev_console" = 1 ]; then
  echo "image: ******************************************************************"
  echo "image: DEVELOPMENT CONSOLE: a root shell without login on ttyS1."
  echo "image: Never flash this image onto a box in the field."
  echo "image: ******************************************************************"
  install -d "$rootfs/etc/systemd/system/serial-getty@ttyS1.service.d"
  printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %%I dumb\n' \
    > "$rootfs/etc/systemd/system/serial-getty@ttyS1.service.d/autologin.conf"
  chroot "$rootfs" systemctl enable serial-getty@ttyS1.service >/dev/null 2>&1
fi
# Journald keeps the journal in memory (the root is read-only); priorities reach the console.
install -d "$rootfs/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=yes\nMaxLevelConsole=warning\n' \
  > "$rootfs/etc/systemd/journald.conf.d/vigil.conf"
# What a firmware image does not need at run time.
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/cache/apt/* \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/lib/modules/*/kernel/{sound,drivers/gpu,drivers/media,drivers/net/wireless,drivers/infiniband,drivers/staging}
# dbus reads the machine id systemd sets up at boot.
ln -sf /etc/machine-id "$rootfs/var/lib/dbus/machine-id"
# The initramfs mounts the squashfs slot: it needs the module (and the block drivers, which
# MODULES=most already brings). Modules were removed above: index what is left first.
printf 'squashfs\n' >> "$rootfs/etc/initramfs-tools/modules"
for fs in proc sys dev; do mount --bind "/$fs" "$rootfs/$fs"; done
trap 'for fs in proc sys dev; do umount -l "$rootfs/$fs" 2>/dev/null || true; done; rm -rf "$work"' EXIT
for kver in "$rootfs"/usr/lib/modules/*; do chroot "$rootfs" depmod -a "${kver##*/}"; done
chroot "$rootfs" update-initramfs -u -k all >/dev/null 2>&1
for fs in proc sys dev; do umount -l "$rootfs/$fs"; done
kernel=$(cd "$rootfs/boot" && ls vmlinuz-* | head -1)
initrd=$(cd "$rootfs/boot" && ls initrd.img-* | head -1)
ln -sf "$kernel" "$rootfs/boot/vmlinuz"
ln -sf "$initrd" "$rootfs/boot/initrd.img"

# Measured boot: GRUB (its tpm module) extends PCR 9 with the SHA-256 of every file it reads,
# in order: grub.cfg, the slot's kernel, its initramfs (grubenv is read unmeasured). The image
# carries the value a genuine boot of it produces, signed with the PCR-policy key: the TLS key
# is sealed to that key's signature (TPM2_PolicyAuthorize), so a genuine update unseals it and a
# modified boot does not.
sed "s|@ATTEMPTS@|$attempts|g" images/box/grub.cfg > "$work/grub.cfg"
pcr_extend() { # PCR value (hex), file -> new value
  local digest
  digest=$(sha256sum "$2" | cut -d' ' -f1)
  perl -e 'print pack("H*", $ARGV[0] . $ARGV[1])' "$1" "$digest" | sha256sum | cut -d' ' -f1
}
pcr9=$(printf '%064d' 0)
for measured in "$work/grub.cfg" "$rootfs/boot/$kernel" "$rootfs/boot/$initrd"; do
  pcr9=$(pcr_extend "$pcr9" "$measured")
done
"$bindir/vigilctl" keys policy sign --key "$policy_key" --pcr "9=$pcr9" \
  --out "$rootfs/etc/vigil/pcr-policy.json" >/dev/null
openssl pkey -in "$policy_key" -pubout -out "$rootfs/etc/vigil/pcr-policy-key.pem" 2>/dev/null
chmod 0644 "$rootfs/etc/vigil/pcr-policy.json" "$rootfs/etc/vigil/pcr-policy-key.pem"

step "making the read-only root filesystem (squashfs)"
mksquashfs "$rootfs" "$work/rootfs.squashfs" -comp gzip -noappend -quiet -no-progress >/dev/null
root_size=$(stat -c %s "$work/rootfs.squashfs")

img='' slot_mb=''
if [ "$bundle_only" = 0 ]; then
  # 4. ESP: GRUB with the modules it needs built in (tpm: it measures what it loads), grub.cfg
  # and the boot environment.
  step "making the EFI system partition (GRUB)"
  grub-mkimage -O x86_64-efi -p /EFI/BOOT -o "$work/BOOTX64.EFI" \
    part_gpt fat squash4 normal linux configfile loadenv test echo search search_label \
    search_fs_uuid search_fs_file regexp gzio efi_gop all_video sleep tpm
  grub-editenv "$work/grubenv" create
  grub-editenv "$work/grubenv" set ORDER="A B" A_OK=1 B_OK=0 A_TRY=0 B_TRY=0
  esp_mb=32
  truncate -s ${esp_mb}M "$work/esp.img"
  mkfs.vfat -F 16 -n VIGIL-ESP "$work/esp.img" >/dev/null
  mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
  mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" "$work/grub.cfg" "$work/grubenv" ::/EFI/BOOT/

  # 5. The disk.
  step "partitioning the disk image"
  slot_mb=$(( (root_size / 1048576) * 2 + 128 ))
  data_mb=256
  disk_mb=$(( 1 + esp_mb + 2 * slot_mb + data_mb + 1 ))
  img=$out/vigil-$version.img
  rm -f "$img"
  truncate -s ${disk_mb}M "$img"
  sgdisk -Z "$img" >/dev/null
  sgdisk -n 1:1M:+${esp_mb}M -t 1:ef00 -c 1:esp \
    -n 2:0:+${slot_mb}M -t 2:8304 -c 2:rootfs-a \
    -n 3:0:+${slot_mb}M -t 3:8304 -c 3:rootfs-b \
    -n 4:0:0 -t 4:8300 -c 4:vigil-data "$img" >/dev/null
  offset() { sgdisk -i "$1" "$img" | sed -n 's/^First sector: \([0-9]*\).*/\1/p'; }
  dd if="$work/esp.img" of="$img" bs=512 seek="$(offset 1)" conv=notrunc status=none
  dd if="$work/rootfs.squashfs" of="$img" bs=512 seek="$(offset 2)" conv=notrunc status=none
  data_sectors=$(( $(sgdisk -i 4 "$img" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p') - $(offset 4) + 1 ))
  mkdir -p "$work/data"
  chmod 0700 "$work/data"
  truncate -s $(( data_sectors * 512 )) "$work/data.img"
  mkfs.ext4 -q -L vigil-data -d "$work/data" "$work/data.img"
  dd if="$work/data.img" of="$img" bs=512 seek="$(offset 4)" conv=notrunc status=none
fi

# 6. The update bundle.
step "signing the update bundle (RAUC, verity format)"
bundle_dir=$work/bundle
mkdir -p "$bundle_dir"
cp "$work/rootfs.squashfs" "$bundle_dir/rootfs.img"
cat > "$bundle_dir/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
description=Vigil $version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.img
MANIFEST
bundle=$out/vigil-$version.raucb
rm -f "$bundle"
rauc bundle --cert="$cert" --key="$key" --keyring="$keyring" "$bundle_dir" "$bundle" >/dev/null
root_digest=$(rauc info --keyring="$keyring" --output-format=shell "$bundle" 2>/dev/null \
  | sed -n "s/^RAUC_IMAGE_DIGEST_0='\(.*\)'/\1/p")

step "done in $(( $(date +%s) - started )) s"
cat <<SUMMARY
  image:        ${img:-none (--bundle-only)}${img:+ ($(du -h --apparent-size "$img" | cut -f1), $(du -h "$img" | cut -f1) on disk, $attempts boot attempts per slot)}
  bundle:       $bundle ($(du -h "$bundle" | cut -f1))
  version:      $version ($profile binaries), kernel ${kernel#vmlinuz-}
  rootfs:       $(( root_size / 1048576 )) MiB squashfs${slot_mb:+ in slots of $slot_mb MiB}
  compatible:   $compatible
  PCR 9:        $pcr9 (a genuine boot; signed in /etc/vigil/pcr-policy.json)
  rootfs:       sha256 ${root_digest:-?} (what the bundle installs, checked by RAUC)
  signed by:    $(openssl x509 -in "$cert" -noout -subject | sed 's/^subject=//')
SUMMARY
