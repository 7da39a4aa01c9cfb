#!/usr/bin/env bash
# prepare-kernel-tree.sh - a kernel source tree made ready for building external modules against it:
# configured and `make modules_prepare`d in a separate output directory (O=OUT), the source untouched,
# so one source serves both architectures. This is what `bitbake linux-yocto -c prepare` (or the
# kernel-devsrc package) gives a Yocto build, reproduced without Yocto.
#
# The module-range step of `make test` builds rtp_mgr against such trees for kernel series that no
# package registry carries (6.6: Yocto scarthgap's linux-yocto): it picks up
# /var/cache/rtpmgr/kernel-trees/<series>/<arch> by itself, and any tree named in RTPMGR_KDIRS.
#
# Usage: scripts/prepare-kernel-tree.sh SRC ARCH OUT [CONFIG]
#   SRC     a kernel source tree (linux-yocto 6.6: a Yocto build's ${S} after do_kernel_configme)
#   ARCH    arm64 (cross, aarch64-linux-gnu-) or amd64
#   OUT     the prepared tree, later KDIR (make -C kernel KDIR=OUT)
#   CONFIG  a .config to start from (a Yocto build's ${B}/.config); default: the arch's defconfig
# CONFIG_MODULES is forced on (modules_prepare needs it). Run it under scripts/heavy-lock: it compiles
# kbuild's host tools and, on x86, objtool (a few minutes on two cores).
#
# modules_prepare writes no Module.symvers (only a full kernel build does): modpost then cannot check
# the module's undefined symbols against the kernel; module-range checks them against the source's
# EXPORT_SYMBOLs instead (test/run-tests.sh). OUT/rtpmgr-tree.txt records what was prepared.
set -euo pipefail

die() { printf 'prepare-kernel-tree: %s\n' "$*" >&2; exit 1; }
usage="usage: prepare-kernel-tree.sh SRC ARCH OUT [CONFIG]"
src=${1:?$usage}
arch=${2:?$usage}
out=${3:?$usage}
config=${4:-}

if [ ! -f "$src/Makefile" ] || [ ! -f "$src/Kconfig" ]; then
	die "$src is not a kernel source tree"
fi
src=$(cd "$src" && pwd)
[ ! -e "$src/.config" ] || die "$src has a .config: kbuild refuses O= builds from a configured source (make mrproper there)"
case "$arch" in
arm64) karch=arm64 cross=aarch64-linux-gnu- defconfig=defconfig ;;
amd64) karch=x86_64 cross='' defconfig=x86_64_defconfig ;;
*) die "unknown arch '$arch' (known: arm64, amd64)" ;;
esac
[ -z "$config" ] || [ -f "$config" ] || die "config $config not found"

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/.complete"
kmake=(nice -n 10 make -C "$src" O="$out" ARCH="$karch" CROSS_COMPILE="$cross" -j"$(nproc)")

if [ -n "$config" ]; then
	cp "$config" "$out/.config"
	origin="$config"
else
	"${kmake[@]}" -s "$defconfig"
	origin="$defconfig of the source"
fi
"$src/scripts/config" --file "$out/.config" --enable MODULES
"${kmake[@]}" -s olddefconfig
grep -qx 'CONFIG_MODULES=y' "$out/.config" || die "CONFIG_MODULES cannot be enabled in this configuration"
"${kmake[@]}" modules_prepare

version=$("${kmake[@]}" -s kernelversion)
release=$(cat "$out/include/config/kernel.release")
{
	echo "source: $src"
	echo "source-origin: ${RTPMGR_TREE_ORIGIN:-not recorded (set RTPMGR_TREE_ORIGIN)}"
	echo "version: $version"
	echo "release: $release"
	echo "arch: $arch (ARCH=$karch CROSS_COMPILE=$cross)"
	echo "config: $origin, CONFIG_MODULES=y, olddefconfig"
	echo "compiler: $("${cross}gcc" --version | head -n1)"
	echo "prepared: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out/rtpmgr-tree.txt"
touch "$out/.complete"
echo "$out"
