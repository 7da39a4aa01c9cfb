#!/usr/bin/env bash
# bitbake-bundle-check.sh - parse meta-rtpmgr with RAUC enabled (kas.yml:kas/rauc.yml) and compute
# the task graph of the update bundle, offline, without building anything:
#   kas shell kas.yml:kas/rauc.yml:kas/offline.yml -c 'bitbake -p && bitbake -g rtpmgr-bundle'
# then checks that the graph holds what an A/B update needs (rauc, rtpmgr-rauc-conf,
# rtpmgr-boot-script, rtpmgr-data, libubootenv) and that system.conf's and boot.scr's placeholders
# resolve. Second, that the layer still parses WITHOUT meta-rauc (kas.yml alone): the RAUC recipes
# must skip themselves there, not break the default build.
#
# Needs clones of the pinned layers in KAS_WORK_DIR (default build/kas-work): poky and
# meta-rust-bin (kas.yml) and meta-rauc (kas/rauc.yml, commit d63878f2...). Without them it skips
# with a message and exit status 0. The development signing CA is made in the build directory with
# meta-rauc's scripts/openssl-ca.sh, as docs/ota.md tells users to. BitBake refuses to run as root:
# as root, it runs as BITBAKE_USER (default yocto, created if missing).
#
# Usage: test/ota/bitbake-bundle-check.sh
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
KAS_WORK_DIR=$(realpath -m "${KAS_WORK_DIR:-$TOP/build/kas-work}")
BITBAKE_USER=${BITBAKE_USER:-yocto}
LOCK=${RTPMGR_HEAVY_LOCK:-/tmp/rtpmgr/heavy.lock}
build=$TOP/build/kas-build/ota-qemuarm64
files=kas.yml:kas/rauc.yml:kas/offline.yml

skip() { printf 'bitbake-bundle-check: SKIPPED: %s\n' "$*"; exit 0; }
die() { printf 'bitbake-bundle-check: error: %s\n' "$*" >&2; exit 1; }

for l in poky meta-rust-bin meta-rauc; do
	[ -d "$KAS_WORK_DIR/$l/.git" ] ||
		skip "no clone of $l in $KAS_WORK_DIR; clone the layers pinned in kas.yml and kas/rauc.yml there"
done
want=$(sed -n '/^  meta-rauc:/,/commit:/s/.*commit: *//p' "$TOP/kas/rauc.yml")
have=$(git -c safe.directory='*' -C "$KAS_WORK_DIR/meta-rauc" rev-parse HEAD)
[ "$want" = "$have" ] || skip "meta-rauc clone is at $have, kas/rauc.yml pins $want"
KAS=$TOP/build/venv/bin/kas
[ -x "$KAS" ] || KAS=$(command -v kas) || skip "kas not found (scripts/check-layer.sh creates build/venv)"
locale -a 2>/dev/null | grep -qix 'en_US.utf8' || die "the en_US.UTF-8 locale is missing"

as_user=()
mkdir -p "$build"
if [ "$(id -u)" = 0 ]; then
	id "$BITBAKE_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$BITBAKE_USER"
	chown -R "$BITBAKE_USER:" "$KAS_WORK_DIR/meta-rauc" "$build"
	as_user=(runuser -u "$BITBAKE_USER" --)
fi
# root's kas venv may not run as that user: use the one bitbake-check.sh makes for it.
if ! "${as_user[@]}" "$KAS" --version >/dev/null 2>&1; then
	KAS=$TOP/build/kas-build/venv/bin/kas
	"${as_user[@]}" "$KAS" --version >/dev/null 2>&1 ||
		skip "kas does not run as $BITBAKE_USER; run scripts/bitbake-check.sh once (it sets up $KAS)"
fi
gitconfig=$build/gitconfig
printf '[safe]\n\tdirectory = *\n' >"$gitconfig"
chmod a+r "$gitconfig"

# The development CA, as a user makes it (docs/ota.md): kas/rauc.yml points RAUC_* at it.
if [ ! -f "$build/openssl-ca/dev/ca.cert.pem" ]; then
	(cd "$build" && "${as_user[@]}" bash "$KAS_WORK_DIR/meta-rauc/scripts/openssl-ca.sh" >openssl-ca.log 2>&1) ||
		die "meta-rauc's openssl-ca.sh failed, see $build/openssl-ca.log"
fi

cmds='bitbake -p && bitbake -g rtpmgr-bundle &&
	bitbake -e rtpmgr-rauc-conf >env-rauc-conf && bitbake -e rtpmgr-boot-script >env-boot-script &&
	bitbake -e rtpmgr-image >env-image'
printf '==> kas shell %s -c "bitbake -p && bitbake -g rtpmgr-bundle"\n' "$files"
for l in poky meta-rust-bin meta-rauc; do
	printf '    %-14s %s\n' "$l" "$(git -c safe.directory='*' -C "$KAS_WORK_DIR/$l" log -1 --format='%H %s')"
done
start=$(date +%s)
mkdir -p "$(dirname "$LOCK")"
if ! (cd "$TOP" && "$TOP/scripts/heavy-lock" nice -n 10 "${as_user[@]}" env \
	KAS_WORK_DIR="$KAS_WORK_DIR" KAS_BUILD_DIR="$build" GITCONFIG_FILE="$gitconfig" \
	"$KAS" shell "$files" -c "$cmds") >"$build/check.log" 2>&1; then
	grep -E '^(ERROR|WARNING):' "$build/check.log" | head -20
	die "BitBake failed after $(($(date +%s) - start)) s, see $build/check.log"
fi
echo "    parse and graph ok in $(($(date +%s) - start)) s (lock wait included)"

fail=0
expect() { # what, command
	if "${@:2}"; then echo "    ok: $1"; else echo "    NOT OK: $1"; fail=1; fi
}
deps=$build/task-depends.dot
for r in rtpmgr-image rauc rtpmgr-rauc-conf rtpmgr-boot-script rtpmgr-data libubootenv u-boot-tools-native; do
	expect "$r is in rtpmgr-bundle's task graph" grep -q "^\"$r\.do_" "$deps"
done
envvar() { sed -n "s/^$2=\"\(.*\)\"$/\1/p" "$build/$1"; }
expect "system.conf's slots: A=$(envvar env-rauc-conf RTPMGR_ROOTFS_A_DEV) B=$(envvar env-rauc-conf RTPMGR_ROOTFS_B_DEV)" \
	[ "$(envvar env-rauc-conf RTPMGR_ROOTFS_A_DEV)" = /dev/vda2 ]
expect "compatible: $(envvar env-rauc-conf RTPMGR_RAUC_COMPATIBLE)" \
	[ "$(envvar env-rauc-conf RTPMGR_RAUC_COMPATIBLE)" = rtpmgr-qemuarm64 ]
expect "boot.scr kernel command line: $(envvar env-boot-script RTPMGR_KERNEL_CMDLINE)" \
	grep -q '^RTPMGR_KERNEL_CMDLINE="console=ttyAMA0,115200' "$build/env-boot-script"
expect "the image is A/B: WKS_FILE=$(envvar env-image WKS_FILE)" [ "$(envvar env-image WKS_FILE)" = rtpmgr-ab.wks ]
expect "DISTRO_FEATURES has rauc" bash -c "grep '^DISTRO_FEATURES=' '$build/env-image' | grep -qw rauc"

# Without meta-rauc and without DISTRO_FEATURES rauc: everything parses, the RAUC recipes skip.
plain=$TOP/build/kas-build/ota-norauc
mkdir -p "$plain"
[ ${#as_user[@]} -eq 0 ] || chown "$BITBAKE_USER:" "$plain"
printf '==> kas shell kas.yml:kas/offline.yml -c "bitbake -p" (no meta-rauc)\n'
start=$(date +%s)
if (cd "$TOP" && "$TOP/scripts/heavy-lock" nice -n 10 "${as_user[@]}" env \
	KAS_WORK_DIR="$KAS_WORK_DIR" KAS_BUILD_DIR="$plain" GITCONFIG_FILE="$gitconfig" \
	"$KAS" shell kas.yml:kas/offline.yml -c 'bitbake -p') >"$plain/check.log" 2>&1; then
	echo "    ok: parses without meta-rauc in $(($(date +%s) - start)) s (lock wait included)"
else
	grep -E '^(ERROR|WARNING):' "$plain/check.log" | head -10
	echo "    NOT OK: the layer does not parse without meta-rauc, see $plain/check.log"
	fail=1
fi

warnings=$(grep -c '^WARNING:' "$build/check.log" || true)
echo "    BitBake warnings: $warnings (see $build/check.log)"
[ $fail = 0 ] && echo "bitbake-bundle-check: ok" || die "checks failed"
