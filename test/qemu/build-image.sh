#!/usr/bin/env bash
# build-image.sh - assemble the bootable aarch64 test image of the appliance.
#
# Inputs: Debian bookworm arm64 packages (kernel, busybox, glibc, udev, kmod, GStreamer runtime) and this
# repository's artifacts: the rtp_mgr module built for that kernel, rtp_app and rtp-feeder built for
# aarch64, the on-device test suite (test/device), and the files the Yocto layer installs (init scripts,
# udev rule, module options, feeder config — read from meta-rtpmgr/, never copied into the harness).
#
# Output: $BUILD/image/{Image,initrd.gz} for test/qemu/boot.sh. Every step is cached (see lib.sh).
#
# RTPMGR_KERNEL=debug: the same image on the sanitizer kernel (KASAN, KFENCE, lockdep, UBSAN, kmemleak;
# test/qemu/build-debug-kernel.sh, cached under /var/cache/rtpmgr/debug-kernel), with rtp_mgr built
# against that kernel's tree. Output: $BUILD/image-debug/; boot it with RTPMGR_KERNEL=debug boot.sh.
set -euo pipefail
# shellcheck source=test/qemu/lib.sh
. "$(dirname "$0")/lib.sh"
# The whole assembly holds the machine's heavy lock: a second run (`make demo` while `make test`
# builds) waits, then finds everything cached, instead of writing the same rootfs at once.
if [ -z "${RTPMGR_IMAGE_LOCKED:-}" ]; then
	RTPMGR_IMAGE_LOCKED=1 exec "$REPO/scripts/heavy-lock" "$0" "$@"
fi

FLAVOUR=${RTPMGR_KERNEL:-debian}
case "$FLAVOUR" in
debian) SUFFIX="" ;;
debug) SUFFIX=-debug ;;
*) step "kernel: choose"; fail "RTPMGR_KERNEL=$FLAVOUR: known kernels are debian (default) and debug" ;;
esac

if [ "$FLAVOUR" = debug ]; then
	# --- 1. the sanitizer kernel: Image and the prepared build tree ---------------------------------
	step "kernel: sanitizer kernel (test/qemu/build-debug-kernel.sh)"
	mkdir -p "$BUILD/logs"
	KOUT=$("$QEMU_DIR/build-debug-kernel.sh" | tee >(cat >&2) | tail -n1)
	[ -f "$KOUT/Image" ] || fail "build-debug-kernel.sh gave no Image ($KOUT)"
	KDIR=$KOUT/build
	KVER=$(cat "$KDIR/include/config/kernel.release")
	KIMAGE=$KOUT/Image
	# modules.builtin & co. for depmod in the guest: every driver the image needs is built in.
	KSYSROOT=$BUILD/kernel-debug-sysroot
	if ! stamp_ok kernel-debug-sysroot "$KOUT"; then
		rm -rf "$KSYSROOT"
		make -s -C "$KDIR" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- INSTALL_MOD_PATH="$KSYSROOT" \
			modules_install >"$BUILD/logs/debug-kernel-modules-install.log" 2>&1 ||
			fail "modules_install of the sanitizer kernel failed (log: $BUILD/logs/debug-kernel-modules-install.log)"
		stamp_set kernel-debug-sysroot "$KOUT"
	fi
	info "kernel $KVER ($KIMAGE)"
	[ -z "${RTPMGR_ONLY_KERNEL:-}" ] || exit 0
else
	ABI=$(kernel_abi)
	[ -n "$ABI" ] || { step "kernel: find the Debian arm64 kernel"; fail "apt-cache knows no linux-image-arm64:arm64 (run scripts/setup-host.sh)"; }
	KSYSROOT=$BUILD/kernel-sysroot
	KDIR=$KSYSROOT/usr/src/linux-headers-$ABI-arm64
	KVER=$ABI-arm64

	# --- 1. Debian kernel image and headers ---------------------------------------------------------
	step "kernel: Debian arm64 $KVER image and headers"
	if stamp_ok kernel-sysroot "$ABI"; then
		info "cached ($KSYSROOT)"
	else
		ver=$(apt-cache show "linux-image-$ABI-arm64-unsigned:arm64" | sed -n 's/^Version: //p' | awk 'NR == 1')
		[ -n "$ver" ] || fail "no version for linux-image-$ABI-arm64-unsigned:arm64"
		mkdir -p "$BUILD/debs"
		(cd "$BUILD/debs" && apt-get download -q -o APT::Sandbox::User=root \
			"linux-image-$ABI-arm64-unsigned:arm64=$ver" "linux-headers-$ABI-arm64:arm64=$ver" \
			"linux-headers-$ABI-common=$ver" "linux-kbuild-6.1:amd64=$ver") >/dev/null ||
			fail "apt-get download of the kernel packages ($ver) failed"
		rm -rf "$KSYSROOT"
		for deb in "$BUILD"/debs/linux-{image-"$ABI"-arm64-unsigned,headers-"$ABI"-arm64,headers-"$ABI"-common,kbuild-6.1}_"${ver//:/%3a}"_*.deb; do
			dpkg -x "$deb" "$KSYSROOT"
		done
		# The arm64 headers include the -common tree by absolute path: point it into the sysroot.
		sed -i "s|/usr/src/linux-headers-$ABI-common|$KSYSROOT/usr/src/linux-headers-$ABI-common|g" "$KDIR/Makefile"
		stamp_set kernel-sysroot "$ABI"
		info "kernel $ver unpacked into $KSYSROOT"
	fi
	echo "$KDIR" >"$BUILD/kdir-arm64"
	KIMAGE=$KSYSROOT/boot/vmlinuz-$KVER
	# run-tests.sh needs only the headers for its module-arm64 step.
	[ -z "${RTPMGR_ONLY_KERNEL:-}" ] || exit 0
fi

# --- 2. rtp_mgr module ----------------------------------------------------------------------------
step "kernel: build rtp_mgr.ko for arm64 $KVER (W=1)"
MODULE=""
if [ -f "$REPO/kernel/Makefile" ]; then
	log=$BUILD/logs/module-arm64$SUFFIX.log
	mkdir -p "$BUILD/logs"
	if [ "$FLAVOUR" = debug ]; then
		# Its own directory (build_module's module-arm64 belongs to the Debian kernel), and -g so
		# that scripts/faddr2line turns the rtp_mgr frames of a KASAN report into source lines.
		MODULE_BUILD_DIR=$BUILD/module-arm64-debug build_module arm64 "$KDIR" aarch64-linux-gnu- W=1 KCFLAGS=-g \
			>"$log" 2>&1 || { tail -n 30 "$log"; fail "module build failed (full log: $log)"; }
		MODULE=$BUILD/module-arm64-debug/rtp_mgr.ko
	else
		build_module arm64 "$KDIR" aarch64-linux-gnu- W=1 >"$log" 2>&1 ||
			{ tail -n 30 "$log"; fail "module build failed (full log: $log)"; }
		MODULE=$BUILD/module-arm64/rtp_mgr.ko
	fi
	if grep -E 'warning:' "$log"; then fail "module build has warnings at W=1 (log: $log)"; fi
	info "built $(basename "$MODULE") ($(stat -c %s "$MODULE") bytes), no warnings"
else
	info "kernel/ has no module yet: the image carries none"
fi

# --- 3. Rust tools and device tests for aarch64 ---------------------------------------------------
step "rust: rtp_app, rtp-feeder and the conformance suite for $RUST_TARGET"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
RUST_BINS=()
CONFORMANCE=""
if [ -n "${RTPMGR_IMAGE_NO_RUST:-}" ]; then
	info "RTPMGR_IMAGE_NO_RUST set: the image carries no Rust tools"
elif [ -f "$REPO/crates/Cargo.toml" ]; then
	log=$BUILD/logs/cargo-aarch64.log
	mkdir -p "$BUILD/logs"
	with_lock cargo build --manifest-path "$REPO/crates/Cargo.toml" --release --locked \
		--target "$RUST_TARGET" --workspace --bins >"$log" 2>&1 ||
		{ tail -n 40 "$log"; fail "cargo build for $RUST_TARGET failed (full log: $log)"; }
	# The GStreamer plugin rtpmgr: a cdylib, which --bins leaves out.
	with_lock cargo build --manifest-path "$REPO/crates/Cargo.toml" --release --locked \
		--target "$RUST_TARGET" -p gst-plugin-rtpmgr --lib >>"$log" 2>&1 ||
		{ tail -n 40 "$log"; fail "cargo build of gst-plugin-rtpmgr for $RUST_TARGET failed (full log: $log)"; }
	for b in rtp_app rtp-feeder rtpmgr-bench; do
		f=$CARGO_TARGET_DIR/$RUST_TARGET/release/$b
		[ -x "$f" ] && RUST_BINS+=("$f")
	done
	# The conformance suite of the ring library, as a test executable run in the guest against the
	# kernel backend (the host runs the same suite against the shm backend).
	if [ -f "$REPO/crates/rtpmgr/tests/conformance.rs" ]; then
		CONFORMANCE=$(with_lock cargo test --manifest-path "$REPO/crates/Cargo.toml" --release --locked \
			--target "$RUST_TARGET" -p rtpmgr --test conformance --no-run --message-format=json 2>>"$log" |
			sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1) ||
			fail "cargo test --no-run of the conformance suite failed (log: $log)"
	fi
	info "binaries: ${RUST_BINS[*]:-none} ${CONFORMANCE:+conformance: $(basename "$CONFORMANCE")}"
else
	info "crates/ has no workspace yet: the image carries no Rust tools"
fi

SELFTEST=""
if [ -f "$REPO/test/device/kernel/Makefile" ]; then
	log=$BUILD/logs/selftest-arm64.log
	mkdir -p "$BUILD/device-tests"
	SELFTEST=$BUILD/device-tests/rtp_mgr_selftest
	# -B: $BUILD may be shared with another checkout (a worktree, a helper's export), whose newer
	# binary make would otherwise take for up to date against these older sources.
	make -B -C "$REPO/test/device/kernel" CC=aarch64-linux-gnu-gcc PROG="$SELFTEST" >"$log" 2>&1 ||
		{ tail -n 30 "$log"; fail "building the kernel ABI selftest failed (log: $log)"; }
fi

# --- 4. guest base rootfs from Debian arm64 packages ----------------------------------------------
step "rootfs: Debian arm64 userland (busybox, glibc, udev, kmod, GStreamer)"
PKGS_FILE=$QEMU_DIR/rootfs-packages.txt
base=$BUILD/rootfs-base
phash=$(grep -v '^#' "$PKGS_FILE" | sort | sha256sum | cut -c1-16)
if stamp_ok rootfs-base "$phash"; then
	info "cached ($base)"
else
	rm -rf "$base"
	pkgs=$(grep -v '^#' "$PKGS_FILE" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
	with_lock mmdebstrap --quiet --architectures=arm64 --variant=extract --include="$pkgs" \
		bookworm "$base" >"$BUILD/logs/mmdebstrap.log" 2>&1 ||
		{ tail -n 20 "$BUILD/logs/mmdebstrap.log"; fail "mmdebstrap failed"; }
	"$QEMU_DIR/trim-rootfs.sh" "$base"
	stamp_set rootfs-base "$phash"
	info "extracted $(du -sh "$base" | cut -f1)"
fi

# --- 5. overlay this repository's artifacts, pack the initramfs -----------------------------------
step "image: overlay rtpmgr artifacts and pack the initramfs"
root=$BUILD/rootfs$SUFFIX
img=$BUILD/image$SUFFIX
rm -rf "$root"
cp -a "$base" "$root"
"$QEMU_DIR/install-artifacts.sh" "$root" "$KVER" "$KSYSROOT" "$MODULE" "$SELFTEST" "$CONFORMANCE" "${RUST_BINS[@]}"
# The GStreamer plugin rtpmgr (rtpmgrsrc, rtpmgrsink) in the system plugin directory, where the
# gstreamer1.0-plugin-rtpmgr package puts it: found without GST_PLUGIN_PATH (device suite "gst").
plugin=$CARGO_TARGET_DIR/$RUST_TARGET/release/libgstrtpmgr.so
if [ -z "${RTPMGR_IMAGE_NO_RUST:-}" ] && [ -f "$plugin" ]; then
	install -D -m 0755 "$plugin" "$root/usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstrtpmgr.so"
fi
# The ioctl/mmap fuzzer (crates/rtpmgr-fuzz), run by the device suite "fuzz" when it is installed.
fuzzer=$CARGO_TARGET_DIR/$RUST_TARGET/release/rtpmgr-fuzz
if [ -z "${RTPMGR_IMAGE_NO_RUST:-}" ] && [ -x "$fuzzer" ]; then
	install -D -m 0755 "$fuzzer" "$root/usr/lib/rtpmgr/tests/rtpmgr-fuzz"
fi
# The kernel's RFC 3550 numbers against GStreamer's rtpsession (crates/rtpmgr-bench, device suite
# "gst", check 6).
quality=$CARGO_TARGET_DIR/$RUST_TARGET/release/rtpmgr-quality-check
if [ -z "${RTPMGR_IMAGE_NO_RUST:-}" ] && [ -x "$quality" ]; then
	install -D -m 0755 "$quality" "$root/usr/lib/rtpmgr/tests/rtpmgr-quality-check"
fi
mkdir -p "$img"
cp "$KIMAGE" "$img/Image"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -1) >"$img/initrd.gz.tmp"
mv "$img/initrd.gz.tmp" "$img/initrd.gz"
info "initrd $(du -h "$img/initrd.gz" | cut -f1), kernel $KVER ($img)"
