#!/usr/bin/env bash
# install-artifacts.sh ROOT KVER KSYSROOT MODULE SELFTEST CONFORMANCE [RUST_BINS...]
#
# Install this repository's artifacts into the test image's root, at the paths the Yocto recipes
# install them to (meta-rtpmgr/recipes-*). The configuration files themselves are taken from the
# layer, so the image runs exactly what the product ships. Empty arguments mean "not built yet".
set -euo pipefail
root=$1 kver=$2 ksysroot=$3 module=$4 selftest=$5 conformance=$6
shift 6
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAYER=$REPO/meta-rtpmgr

install_if() { # SRC DEST MODE: install SRC when it exists (files of parts not written yet are optional)
	if [ -f "$1" ]; then install -D -m "$3" "$1" "$root$2"; else echo "    (not yet in the tree: ${1#"$REPO"/})"; fi
}

# PID 1 and the shell: busybox applets are linked at boot (busybox --install -s never overwrites).
install -m 0755 "$REPO/test/qemu/init" "$root/init"
ln -sf busybox "$root/bin/sh"
mkdir -p "$root"/{proc,sys,dev,run,tmp,var/log,var/lib/rtpmgr,data}

# Kernel module, with a modules.dep so that modprobe (kmod) finds it and applies modprobe.d options.
if [ -n "$module" ]; then
	install -D -m 0644 "$module" "$root/lib/modules/$kver/extra/rtp_mgr.ko"
	grep -v '^#' "$REPO/test/qemu/guest-modules.txt" | while read -r m; do
		# The sanitizer kernel (RTPMGR_KERNEL=debug) has these built in: nothing to install.
		if [ -n "$m" ] && ! grep -qxF "kernel/$m" "$ksysroot/lib/modules/$kver/modules.builtin" 2>/dev/null; then
			install -D -m 0644 "$ksysroot/lib/modules/$kver/kernel/$m" "$root/lib/modules/$kver/kernel/$m"
		fi
	done
	cp "$ksysroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/" 2>/dev/null || true
	depmod -b "$root" "$kver"
fi
install_if "$LAYER/recipes-kernel/rtp-mgr/files/rtp_mgr.conf" /etc/modprobe.d/rtp_mgr.conf 0644
# KERNEL_MODULE_AUTOLOAD makes Yocto write this one-line file.
mkdir -p "$root/etc/modules-load.d"
echo rtp_mgr >"$root/etc/modules-load.d/rtp_mgr.conf"

# Tools.
for b in "$@"; do install -D -m 0755 "$b" "$root/usr/bin/$(basename "$b")"; done

# The udev rule, the services with their configuration and the on-device test scripts: the lines of
# meta-rtpmgr/files/install.manifest, the list the recipes install from, with the same modes and
# owners. The guest runs busybox init: systemd units are left out.
"$LAYER/lib/rtpmgr/manifest.py" "$LAYER/files/install.manifest" "$REPO" rtp-mgr rtp-app rtp-app-metrics rtp-feeder rtpmgr-tests >"$root/.manifest"
while read -r mode owner src dest; do
	case $dest in /lib/systemd/*) continue ;; esac
	install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$src" "$root$dest"
done <"$root/.manifest"
rm -f "$root/.manifest"

# The AppArmor profiles of rtp_app and rtp-feeder and their sysvinit loader: the layer's files
# (rtpmgr-apparmor recipe), installed where that recipe puts them; /init runs the loader before the
# services start. This rtp_app is built with its "xdp" feature: its --xdp rules (rtp_app-xdp, which
# the layer's recipe leaves out with its XDP-less rtp_app) are installed too.
aa_files=$LAYER/dynamic-layers/security/recipes-security/rtpmgr-apparmor/files
for profile in "$aa_files"/usr.bin.*; do
	install -D -m 0644 "$profile" "$root/etc/apparmor.d/$(basename "$profile")"
done
install -D -m 0644 "$aa_files/rtp_app-xdp" "$root/etc/apparmor.d/rtpmgr/rtp_app-xdp"
install -D -m 0755 "$aa_files/rtpmgr-apparmor.init" "$root/etc/init.d/rtpmgr-apparmor"

# Users and groups: what the recipes' useradd class creates. The services run as rtpmgr, a member of
# the rtpmgr group that owns the device nodes (udev rule).
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
rtpmgr:x:990:990:rtpmgr services:/var/lib/rtpmgr:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
rtpmgr:x:990:
nogroup:x:65534:
EOF
chown 990:990 "$root/var/lib/rtpmgr"

# The built parts of the on-device test suite (its scripts came from the manifest above).
dest=$root/usr/lib/rtpmgr/tests
mkdir -p "$dest"
[ -n "$selftest" ] && install -m 0755 "$selftest" "$dest/rtp_mgr_selftest"
[ -n "$conformance" ] && install -m 0755 "$conformance" "$dest/rtpmgr-conformance"
true
