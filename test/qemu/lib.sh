# shellcheck shell=bash
# lib.sh - shared helpers of the QEMU aarch64 harness (sourced, not run).
#
# Everything the harness makes lives under $BUILD (default <repo>/build): downloaded .debs, the kernel
# sysroot, the guest rootfs, the initramfs, console logs. Each step is cached by a stamp file holding the
# hash of its inputs, so a second run re-downloads nothing and rebuilds only what changed.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$REPO/build}
QEMU_DIR=$REPO/test/qemu
LAYER=$REPO/meta-rtpmgr
RUST_TARGET=aarch64-unknown-linux-gnu
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/crates/target}
export CARGO_TARGET_DIR

# Serialize heavy steps (builds, boots) with other users of this machine's two cores: scripts/heavy-lock
# (re-entrant, so a step that already holds the lock can call helpers that ask for it again).
mkdir -p "$BUILD"

step_name=""
step() { step_name=$1; printf '\n==> %s\n' "$1"; }
info() { printf '    %s\n' "$*"; }
fail() {
	printf '\nFAILED step: %s\n    %s\n' "${step_name:-harness}" "$*" >&2
	exit 1
}

# stamp_ok NAME HASH: true if step NAME was already done with inputs HASH.
stamp_ok() { [ -f "$BUILD/stamps/$1" ] && [ "$(cat "$BUILD/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$BUILD/stamps"; echo "$2" >"$BUILD/stamps/$1"; }

# hash_of FILES/DIRS...: one hash over the content of files (sorted, recursive), for stamps.
hash_of() {
	find "$@" -type f ! -path '*/target/*' -print0 2>/dev/null | sort -z |
		xargs -0 sha256sum | sha256sum | cut -c1-16
}

# The Debian arm64 kernel ABI (e.g. 6.1.0-56) and package version of the current bookworm kernel.
# Taken from linux-image-arm64, not linux-headers-arm64, which can lag (see shared notes).
kernel_abi() {
	apt-cache depends linux-image-arm64:arm64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\(.*\)-arm64:arm64$/\1/p' | awk 'NR == 1'
}

with_lock() { "$REPO/scripts/heavy-lock" "$@"; }

# build_module ARCH KDIR CROSS_COMPILE [make args...]: build rtp_mgr out of the source tree, in
# $BUILD/module-ARCH, so builds for two kernels (and a developer's own `make -C kernel`) never mix objects.
# The copy and the build run under one lock: `make demo` and `make test` started at once must not
# build the same module directory under each other's feet. MODULE_BUILD_DIR overrides the directory
# (the sanitizer kernel's build: $BUILD/module-arm64-debug).
build_module() {
	local arch=$1 kdir=$2 cross=$3 dir=${MODULE_BUILD_DIR:-$BUILD/module-$1}
	shift 3
	# shellcheck disable=SC2016 # $1.. are expanded by the inner shell
	with_lock bash -c 'set -e; dir=$1 repo=$2; shift 2
		rm -rf "$dir"; mkdir -p "$dir"
		cp -a "$repo"/kernel/. "$dir"/; cp -a "$repo"/include "$dir"/include
		exec make -C "$dir" "$@"' build_module "$dir" "$REPO" \
		KDIR="$kdir" ARCH="$arch" CROSS_COMPILE="$cross" "$@"
}
