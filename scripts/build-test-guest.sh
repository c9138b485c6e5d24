#!/usr/bin/env bash
# Builds the real test guest for the QEMU tests: a Debian cloud kernel and an initramfs with busybox-static, the
# virtio modules for /dev/vda and test/guest/memtest.c (the memory dirtier that checks itself; see that file).
#
#   scripts/build-test-guest.sh [OUTDIR]
#
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/manifest.txt, and prints OUTDIR as the last line of stdout
# (progress goes to stderr). OUTDIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/doppel/test-guest/<key>, where the
# key hashes the kernel package and version, the busybox version, memtest.c, init and this script: running it again
# with nothing changed only prints the directory. Needs the Debian package mirror (apt) for the kernel; installs
# gcc, libc6-dev, cpio and busybox-static with apt-get when they are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/test/guest"
say() { printf 'build-test-guest: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=""
apt_update() {
  [ -n "$apt_updated" ] && return
  say "apt-get update"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >&2
  apt_updated=1
}

# --- tools -----------------------------------------------------------------
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ] || missing+=(busybox-static)
if command -v gcc >/dev/null 2>&1; then
  [ -f "$(gcc -print-file-name=libc.a)" ] || missing+=(libc6-dev)
else
  missing+=(libc6-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
busybox=/bin/busybox
file_is_static() { [ "$(LC_ALL=C readelf -l "$1" 2>/dev/null | grep -c 'Requesting program interpreter')" = 0 ]; }
command -v readelf >/dev/null 2>&1 && { file_is_static "$busybox" || die "$busybox is not static (install busybox-static)"; }

# --- kernel package: the versioned package behind the metapackage ---------------
meta="${DOPPEL_TEST_GUEST_KERNEL_META:-linux-image-cloud-amd64}"
kernel_pkg() { apt-cache depends "$meta" 2>/dev/null | awk '!found && $1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; found = 1 }'; }
kpkg="$(kernel_pkg)"
if [ -z "$kpkg" ]; then
  apt_update
  kpkg="$(kernel_pkg)"
fi
[ -n "$kpkg" ] || die "cannot resolve the kernel package behind $meta (apt-cache depends $meta)"
kver="$(apt-cache policy "$kpkg" | awk '$1 == "Candidate:" { print $2 }')"
[ -n "$kver" ] && [ "$kver" != "(none)" ] || die "no candidate version of $kpkg"
bbver="$(dpkg-query -W -f='${Version}' busybox-static)"

key="$(
  {
    printf '%s=%s\nbusybox-static=%s\n' "$kpkg" "$kver" "$bbver"
    sha256sum "$src/memtest.c" "$src/init" "$root/scripts/build-test-guest.sh" | awk '{ print $1 }'
  } | sha256sum | cut -c1-16
)"
out="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/doppel/test-guest/$key}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

exec 9>"$out/.lock"
flock 9
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
  say "up to date ($kpkg $kver, key $key)"
  echo "$out"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/doppel-test-guest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- kernel and modules ----------------------------------------------------------
say "downloading $kpkg=$kver"
(cd "$work" && apt-get download -q "$kpkg=$kver") >&2
deb="$(ls "$work"/*.deb)"
dpkg-deb -x "$deb" "$work/pkg"
vmlinuz="$(ls "$work"/pkg/boot/vmlinuz-*)"
[ -f "$vmlinuz" ] || die "no boot/vmlinuz-* in $deb"
release="${vmlinuz##*/vmlinuz-}"
moddir="$work/pkg/lib/modules/$release"
config="$work/pkg/boot/config-$release"

# Modules for virtio-blk-pci, with their dependencies (from each module's modinfo "depends="), in load order.
modfile() { find "$moddir/kernel" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" -o -name "$1.ko.gz"; }
modcat() {
  case "$1" in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -qdc "$1" ;;
    *.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
  esac
}
is_builtin() { grep -q "/$1.ko\$" "$moddir/modules.builtin" 2>/dev/null; }
declare -A seen=()
load_order=()
add_module() {
  local m="${1//-/_}" f deps d
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  f="$(modfile "$m")"
  if [ -z "$f" ]; then
    is_builtin "$m" && return 0
    die "module $m is neither in $kpkg nor built in"
  fi
  deps="$(modcat "$f" | tr '\0' '\n' | sed -n 's/^depends=//p')"
  for d in ${deps//,/ }; do add_module "$d"; done
  load_order+=("$m")
}
add_module virtio_pci
add_module virtio_blk

# --- initramfs ----------------------------------------------------------------------
stage="$work/initramfs"
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,root,etc,lib/modules}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
say "compiling memtest"
gcc -static -O2 -Wall -Wextra -s -o "$stage/bin/memtest" "$src/memtest.c"
install -m 0755 "$src/init" "$stage/init"
: >"$stage/etc/modules.load"
for m in "${load_order[@]}"; do
  modcat "$(modfile "$m")" >"$stage/lib/modules/$m.ko"
  echo "$m.ko" >>"$stage/etc/modules.load"
done
find "$stage" -exec touch -h -d @0 {} +
say "packing the initramfs"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet --reproducible -H newc -o -R 0:0 | gzip -9n) >"$work/initrd.img"

builtin_virtio="$(grep -E '^CONFIG_(VIRTIO_BLK|VIRTIO_PCI|SERIAL_8250)=' "$config" 2>/dev/null | tr '\n' ' ' || true)"
{
  echo "kernel_package=$kpkg"
  echo "kernel_version=$kver"
  echo "kernel_release=$release"
  echo "busybox_static=$bbver"
  echo "modules=${load_order[*]:-}"
  echo "config=$builtin_virtio"
  echo "key=$key"
} >"$work/manifest.txt"

cp "$vmlinuz" "$out/.vmlinuz.tmp" && mv -f "$out/.vmlinuz.tmp" "$out/vmlinuz"
cp "$work/initrd.img" "$out/.initrd.tmp" && mv -f "$out/.initrd.tmp" "$out/initrd.img"
cp "$work/manifest.txt" "$out/manifest.txt"
echo "$key" >"$out/.key"
say "built $kpkg $kver (modules: ${load_order[*]:-none}) in $out"
echo "$out"
