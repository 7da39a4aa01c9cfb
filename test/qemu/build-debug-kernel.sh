#!/usr/bin/env bash
# build-debug-kernel.sh - the arm64 sanitizer kernel for the QEMU harness (KASAN, KFENCE, lockdep,
# UBSAN, kmemleak), built from Debian bookworm's linux-source-6.1 with gcc-aarch64-linux-gnu.
#
# Config: arm64 `allnoconfig` + test/qemu/debug-kernel.config (everything the image needs built in).
# Output, cached OUTSIDE the clone so that a fresh clone or `rm -rf build` does not rebuild it:
#   $RTPMGR_KERNEL_CACHE/<hash>/Image      the kernel for qemu -kernel
#   $RTPMGR_KERNEL_CACHE/<hash>/build/     the O= build tree: `make -C .../build M=$PWD modules`
#   $RTPMGR_KERNEL_CACHE/<hash>/build.log  the build's output
# <hash> covers the config fragment, this script, the linux-source-6.1 package version and the cross
# compiler version; a second run with the same inputs rebuilds nothing. The unpacked source is shared
# by all hashes under $RTPMGR_KERNEL_CACHE/source/<version>/.
#
# Prints the cache directory on its last line of stdout (the harness reads it).
# Needs: linux-source-6.1, gcc-aarch64-linux-gnu, flex, bison, bc, libssl-dev, libelf-dev
# (scripts/setup-host.sh installs them).
set -euo pipefail
# shellcheck source=test/qemu/lib.sh
. "$(dirname "$0")/lib.sh"

CACHE=${RTPMGR_KERNEL_CACHE:-/var/cache/rtpmgr/debug-kernel}
FRAGMENT=$QEMU_DIR/debug-kernel.config
TARBALL=/usr/src/linux-source-6.1.tar.xz
CROSS=aarch64-linux-gnu-
JOBS=${RTPMGR_KERNEL_JOBS:-2}

step "debug kernel: inputs"
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
[ -n "$srcver" ] && [ -f "$TARBALL" ] || fail "linux-source-6.1 is not installed (run scripts/setup-host.sh)"
command -v "${CROSS}gcc" >/dev/null || fail "${CROSS}gcc not found (run scripts/setup-host.sh)"
gccver=$("${CROSS}gcc" -dumpfullversion)
key=$( {
	cat "$FRAGMENT" "$0"
	echo "linux-source-6.1 $srcver"
	echo "${CROSS}gcc $gccver"
} | sha256sum | cut -c1-16)
out=$CACHE/$key
info "linux-source-6.1 $srcver, ${CROSS}gcc $gccver, fragment $(basename "$FRAGMENT") -> $out"

if [ -f "$out/done" ]; then
	info "cached: $(cat "$out/done")"
	echo "$out"
	exit 0
fi

# --- 1. source, unpacked once per package version -------------------------------------------------
src=$CACHE/source/$srcver/linux-source-6.1
if [ ! -f "$src/Makefile" ]; then
	step "debug kernel: unpack $TARBALL"
	rm -rf "$CACHE/source/$srcver"
	mkdir -p "$CACHE/source/$srcver"
	tar -xJf "$TARBALL" -C "$CACHE/source/$srcver"
	[ -f "$src/Makefile" ] || fail "$TARBALL did not unpack to $src"
fi

# --- 2. config: allnoconfig + fragment, every fragment line verified -------------------------------
step "debug kernel: configure (allnoconfig + $(basename "$FRAGMENT"))"
rm -rf "$out"
mkdir -p "$out/build"
kmake() { make -C "$src" O="$out/build" ARCH=arm64 CROSS_COMPILE="$CROSS" "$@"; }
log=$out/build.log
{
	kmake allnoconfig
	KCONFIG_CONFIG="$out/build/.config" "$src/scripts/kconfig/merge_config.sh" -m -O "$out/build" \
		"$out/build/.config" "$FRAGMENT"
	kmake olddefconfig
} >"$log" 2>&1 || { tail -n 30 "$log"; fail "configuring failed (log: $log)"; }
# merge_config.sh only warns when Kconfig drops a value; here that is an error.
bad=$(grep -E '^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)' "$FRAGMENT" | while read -r want; do
	if [[ $want == "# "* ]]; then
		opt=${want#\# }
		opt=${opt%% *}
		grep -q "^$opt=" "$out/build/.config" && echo "  $opt: wanted not set, got $(grep "^$opt=" "$out/build/.config")"
	else
		grep -qxF "$want" "$out/build/.config" || echo "  ${want%%=*}: wanted ${want#*=}, got $(grep -E "^(# )?${want%%=*}[= ]" "$out/build/.config" || echo 'nothing (missing dependency)')"
	fi
done)
[ -z "$bad" ] || fail "Kconfig did not keep these lines of $(basename "$FRAGMENT"):
$bad"
info "$(grep -c '=y$' "$out/build/.config") options =y"

# --- 3. build: Image, then prepare the tree for out-of-tree modules --------------------------------
step "debug kernel: build Image and modules_prepare (make -j$JOBS; cold ~$(cat "$CACHE/last-cold-build" 2>/dev/null || echo '?'))"
start=$(date +%s)
with_lock nice -n 10 make -C "$src" O="$out/build" ARCH=arm64 CROSS_COMPILE="$CROSS" -j"$JOBS" \
	Image modules modules_prepare >>"$log" 2>&1 ||
	{ tail -n 40 "$log"; fail "kernel build failed (log: $log)"; }
secs=$(($(date +%s) - start))
cp "$out/build/arch/arm64/boot/Image" "$out/Image"
kver=$(cat "$out/build/include/config/kernel.release")
echo "${secs}s" >"$CACHE/last-cold-build"
echo "$kver built in ${secs}s on $(date -u +%F) (make -j$JOBS)" >"$out/done"
info "$(cat "$out/done")"
echo "$out"
