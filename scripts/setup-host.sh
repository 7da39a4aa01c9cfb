#!/usr/bin/env bash
# setup-host.sh - install what building and testing rtpmgr needs on a Debian 12 (bookworm) x86_64 host.
#
# Idempotent: it installs only what is missing, so `make demo` and `make test` call it every time and a
# second run costs a second. Needs root (apt-get) unless everything is already there.
#
# Usage: scripts/setup-host.sh [--check]     --check: report what is missing, install nothing
set -euo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Host packages (amd64). Grouped by what needs them.
host_pkgs=(
	# module cross build (arm64 Debian kernel) and the second kernel series (amd64 headers), sparse
	build-essential gcc-aarch64-linux-gnu libc6-dev-arm64-cross bc flex bison libelf-dev kmod sparse
	# step module-range: nm lists what a module built against a prepared 6.6 tree imports
	binutils
	linux-headers-amd64
	# step dkms: dkms add/build/install of the module against those headers
	dkms
	# step module-range: 6.12's kbuild generates the module's BTF with pahole
	dwarves
	# step lsm-policies: AppArmor profiles parsed, the SELinux module compiled (refpolicy devel files)
	apparmor selinux-policy-dev checkpolicy semodule-utils
	# the sanitizer kernel (test/qemu/build-debug-kernel.sh) and checkpatch.pl: Debian's kernel source
	linux-source-6.1 xz-utils perl
	# QEMU aarch64 harness: image assembly and boot
	qemu-system-arm mmdebstrap cpio gzip file binutils-aarch64-linux-gnu
	# Rust crates: GStreamer (feeder) for host tests, pkg-config. Only the core -dev package: the
	# feeder drives appsrc/appsink through the app plugin at run time, because the amd64 and arm64
	# libgstreamer-plugins-base1.0-dev of bookworm cannot be installed side by side.
	pkg-config libgstreamer1.0-dev
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools
	# rtp_app's wire test decodes its stream with tshark
	tshark
	# rtp_app's metrics test validates --format openmetrics with promtool (package prometheus)
	prometheus
	# Yocto layer checks run kas and oelint-adv from a venv
	python3-venv python3-pip
	# C ABI layout test of rtpmgr-abi, curl-free tooling
	ca-certificates git make python3 openssl
	# AF_XDP veth tests: namespaces and links (ip), ping through the XDP interface, kill in rtp_app's
	# signal tests. Every command a test or script runs is listed in scripts/commands.txt and checked
	# against these lists by scripts/check-commands.py (step host-commands).
	iproute2 iputils-ping procps
	# layer checks: init scripts under dash, busybox sh and shellcheck; units with systemd-analyze
	busybox shellcheck systemd
	# OTA scenarios (test/ota): U-Boot for QEMU and its env tools, RAUC, image assembly
	u-boot-qemu u-boot-tools libubootenv-tool rauc squashfs-tools dosfstools mtools e2fsprogs fdisk
	# rtpmgr-xdp: its build.rs compiles the XDP program with clang -target bpf (libbpf headers)
	clang libbpf-dev
	# `make diagrams`: docs/*.dot rendered to SVG (scripts/render-diagrams.sh)
	graphviz
)
# Target packages (arm64) needed on the host to cross-link the GStreamer crates.
arm64_pkgs=(libgstreamer1.0-dev:arm64)

missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
	done
}

need_arm64=0
dpkg --print-foreign-architectures | grep -qx arm64 || need_arm64=1
mapfile -t miss < <(missing "${host_pkgs[@]}" "${arm64_pkgs[@]}")
rust_targets=$(rustup target list --installed 2>/dev/null || true)
rust_components=$(rustup component list --installed 2>/dev/null || true)
need_rust=0
grep -qx aarch64-unknown-linux-gnu <<<"$rust_targets" || need_rust=1
for component in clippy rustfmt; do grep -q "^$component" <<<"$rust_components" || need_rust=1; done

# Installing changes machine-wide state (dpkg, rustup): two `make` runs started at once must take turns,
# under the same lock as the heavy build steps, and the second one re-checks what is still missing.
if [ "$check_only" = 0 ] && [ -z "${RTPMGR_SETUP_LOCKED:-}" ] &&
	{ [ "$need_arm64" = 1 ] || [ "${#miss[@]}" -gt 0 ] || [ "$need_rust" = 1 ]; }; then
	RTPMGR_SETUP_LOCKED=1 exec "$(dirname "$0")/heavy-lock" "$0" "$@"
fi

if [ "$need_arm64" = 1 ] || [ "${#miss[@]}" -gt 0 ]; then
	if [ "$check_only" = 1 ]; then
		log "missing: ${miss[*]} $([ "$need_arm64" = 1 ] && echo '(and the arm64 dpkg architecture)')"
		exit 1
	fi
	[ "$(id -u)" = 0 ] || die "need root to install: ${miss[*]} (or install them yourself)"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture: answer no, non-interactively.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	if [ "$need_arm64" = 1 ]; then
		log "adding the arm64 dpkg architecture"
		dpkg --add-architecture arm64
	fi
	log "apt-get update"
	apt-get update -qq
	mapfile -t miss < <(missing "${host_pkgs[@]}" "${arm64_pkgs[@]}")
	log "installing ${#miss[@]} packages: ${miss[*]}"
	apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null
fi

# Rust: the toolchain comes from rustup; the guest needs the aarch64 target.
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
targets=$(rustup target list --installed 2>/dev/null || true)
if ! grep -qx aarch64-unknown-linux-gnu <<<"$targets"; then
	[ "$check_only" = 1 ] && { log "missing: rust target aarch64-unknown-linux-gnu"; exit 1; }
	log "rustup target add aarch64-unknown-linux-gnu"
	rustup target add aarch64-unknown-linux-gnu
fi
# clippy and rustfmt come with rustup's default profile; a minimal-profile toolchain lacks them.
components=$(rustup component list --installed 2>/dev/null || true)
for component in clippy rustfmt; do
	if ! grep -q "^$component" <<<"$components"; then
		[ "$check_only" = 1 ] && { log "missing: rust component $component"; exit 1; }
		log "rustup component add $component"
		rustup component add "$component"
	fi
done
# Miri and ThreadSanitizer (make test steps miri, tsan) run on nightly, with miri and the std
# sources (Miri's sysroot and -Zbuild-std). Whatever nightly is current: nothing pinned.
nightly=$(rustup component list --toolchain nightly --installed 2>/dev/null || true)
if ! grep -q '^miri' <<<"$nightly" || ! grep -q '^rust-src' <<<"$nightly"; then
	[ "$check_only" = 1 ] && { log "missing: rust nightly toolchain with miri and rust-src"; exit 1; }
	log "rustup toolchain install nightly --profile minimal -c miri,rust-src"
	rustup toolchain install nightly --profile minimal -c miri,rust-src
fi
log "host ready"
