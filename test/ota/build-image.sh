#!/bin/bash
# Builds the OTA test system in build/ota/ from Debian arm64 packages and meta-rtpmgr's OTA files:
#   disk.img     MBR disk of the wic layout's shape (meta-rtpmgr/wic/rtpmgr-ab.wks):
#                p1 FAT32 boot (boot.scr + the two boot state copies), p2 rootfs A (version 1),
#                p3 rootfs B (empty, as wic's --source empty leaves it), p4 ext4 data (/data)
#   flash1.img   QEMU pflash 1: a READ-ONLY U-Boot environment whose bootcmd sources boot.scr
#   bundles.img  ext4 disk with the bundles: good (version 2, test CA), wrong-ca, tampered-*
#   pki/         test CA, its signing certificate, and a second CA (all made here, never committed)
# No root-only mounts: partitions are made as files (mkfs.* -d / mcopy) and dd'ed into the disk.
# Cached: the package download and extraction are reused when the inputs did not change.
#
# Usage: test/ota/build-image.sh   (run-ota-tests.sh calls it)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OTA_OUT:-$repo/build/ota}
layer=$repo/meta-rtpmgr
lock=/tmp/rtpmgr/heavy.lock
mkdir -p "$out" /tmp/rtpmgr

log() { echo "[build-image] $*"; }
die() { echo "[build-image] error: $*" >&2; exit 1; }
heavy() { "$repo/scripts/heavy-lock" "$@"; }

suite=bookworm
mirrors=(
	"deb http://deb.debian.org/debian $suite main"
	"deb http://deb.debian.org/debian $suite-updates main"
	"deb http://deb.debian.org/debian-security $suite-security main"
)
# RAUC and what it needs at run time, D-Bus, libubootenv's fw_printenv/fw_setenv, busybox for
# everything else. --variant=extract resolves dependencies but runs no maintainer scripts, so
# nothing of the foreign architecture is executed (no qemu-user, no binfmt).
packages=busybox-static,rauc,dbus-daemon,dbus-system-bus-common,libubootenv-tool,util-linux,e2fsprogs,libc6

# Partition layout (MiB): must match meta-rtpmgr/wic/rtpmgr-ab.wks in order and kind.
boot_mib=64
slot_mib=256
data_mib=64

# Same values the Yocto recipes fill into the shared templates, with QEMU's device names.
compatible=rtpmgr-qemuarm64
kernel_cmdline="console=ttyAMA0 panic=-1 ro rootwait quiet"
scratch_addr=0x4f000000

# ---------------------------------------------------------------- kernel (Debian arm64)
find_kernel_deb() {
	# Reuse the QEMU harness's download (build/debs, see test/qemu/build-image.sh) or ours.
	local d
	for d in "${BUILD:-$repo/build}"/debs "$out"/debs; do
		[ -d "$d" ] || continue
		find "$d" -maxdepth 2 -name 'linux-image-*-arm64-unsigned_*_arm64.deb' 2>/dev/null
	done | sort -V | tail -n1
}

kdeb=$(find_kernel_deb)
if [ -z "$kdeb" ]; then
	# The ABI of the current kernel meta package (linux-headers-arm64 may lag behind).
	# apt prints the dependency as linux-image-<abi>:arm64 on an amd64 host with arm64 added.
	abi=$(apt-cache depends linux-image-arm64:arm64 |
		sed -n 's/.*Depends: linux-image-\(.*-arm64\)\(:arm64\)\{0,1\}$/\1/p' | awk 'NR == 1')
	[ -n "$abi" ] || die "cannot find the arm64 kernel ABI (dpkg --add-architecture arm64 && apt-get update?)"
	mkdir -p "$out/debs"
	log "downloading linux-image-$abi-unsigned:arm64"
	(cd "$out/debs" && apt-get download "linux-image-$abi-unsigned:arm64")
	kdeb=$(find_kernel_deb)
fi
[ -n "$kdeb" ] || die "no linux-image-*-arm64-unsigned deb found"
kroot=$out/kernel
if [ "$(cat "$kroot/.stamp" 2>/dev/null)" != "$kdeb" ]; then
	log "unpacking $(basename "$kdeb")"
	rm -rf "$kroot"
	mkdir -p "$kroot"
	dpkg -x "$kdeb" "$kroot"
	kver=$(ls "$kroot/lib/modules")
	depmod -b "$kroot" "$kver"
	echo "$kdeb" > "$kroot/.stamp"
fi
kver=$(ls "$kroot/lib/modules")
kimage=$(ls "$kroot"/boot/vmlinuz-*)

# insmod lines in dependency order for the named modules, as paths inside the guest.
modlist() {
	local m
	for m in "$@"; do
		modprobe -d "$kroot" -S "$kver" --show-depends "$m" | sed -n "s|^insmod $kroot||p" | sed 's/ *$//'
	done | awk '!seen[$0]++'
}

# ---------------------------------------------------------------- base root filesystem (cached)
key=$(echo "$suite $packages ${mirrors[*]}" | sha256sum | cut -c1-16)
base_tar=$out/cache/base-$key.tar
if [ ! -s "$base_tar" ]; then
	mkdir -p "$out/cache"
	log "mmdebstrap (arm64, extract): $packages"
	heavy mmdebstrap --quiet --format=tar --architectures=arm64 --variant=extract --include="$packages" \
		"$suite" "$base_tar.tmp" "${mirrors[@]}"
	mv "$base_tar.tmp" "$base_tar"
fi

# ---------------------------------------------------------------- PKI, made at test time
pki=$out/pki
rm -rf "$pki"
mkdir -p "$pki"
make_ca() { # name
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=rtpmgr test/CN=$1" \
		-keyout "$pki/$1.key.pem" -out "$pki/$1.cert.pem" \
		-addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
make_signer() { # ca name
	openssl req -newkey rsa:2048 -nodes -subj "/O=rtpmgr test/CN=$2" \
		-keyout "$pki/$2.key.pem" -out "$pki/$2.csr.pem" 2>/dev/null
	printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n' > "$pki/$2.ext"
	openssl x509 -req -in "$pki/$2.csr.pem" -CA "$pki/$1.cert.pem" -CAkey "$pki/$1.key.pem" \
		-CAcreateserial -days 3650 -extfile "$pki/$2.ext" -out "$pki/$2.cert.pem" 2>/dev/null
}
make_ca test-ca
make_signer test-ca test-signer
make_ca other-ca
make_signer other-ca other-signer
log "test PKI: $(openssl x509 -noout -subject -in "$pki/test-signer.cert.pem")"

# ---------------------------------------------------------------- root filesystem tree
subst() { # template -> stdout, with the QEMU values for the shared meta-rtpmgr templates
	sed -e "s|@RAUC_COMPATIBLE@|$compatible|g" \
	    -e "s|@RAUC_DATA_DIR@|/data/rauc|g" \
	    -e "s|@ROOTFS_A_DEV@|/dev/vda2|g" -e "s|@ROOTFS_B_DEV@|/dev/vda3|g" \
	    -e "s|@BOOT_PART@|1|g" -e "s|@ROOTFS_A_PART@|2|g" -e "s|@ROOTFS_B_PART@|3|g" \
	    -e "s|@SCRATCH_ADDR@|$scratch_addr|g" -e "s|@KERNEL_IMAGE@|Image|g" \
	    -e "s|@KERNEL_CMDLINE@|$kernel_cmdline|g" "$1"
}

# meta-rtpmgr's product files (written by the Yocto recipes' owner); a stand-in with the documented
# content while a file does not exist yet, so this test does not depend on that work's progress.
layer_file() { # path below meta-rtpmgr
	if [ -f "$layer/$1" ]; then
		echo "$layer/$1"
	else
		mkdir -p "$out/standin/$(dirname "$1")"
		case "$1" in
		*/rtp_mgr.conf) echo "options rtp_mgr channels=4 ring_order=10 slot_payload=2048" ;;
		*/rtp-rx.default) echo 'RTP_RX_ARGS="--bind 0.0.0.0 --port 5004 --channel 0"' ;;
		*) echo "# $1 (stand-in)" ;;
		esac > "$out/standin/$1"
		echo "$out/standin/$1"
	fi
}

tree=$out/rootfs
log "assembling the root filesystem"
rm -rf "$tree"
mkdir -p "$tree"
tar -C "$tree" -xf "$base_tar"
# Not needed at run time, and every MiB is copied by each install under emulation.
rm -rf "$tree"/usr/share/{doc,man,info,locale,perl,perl5,bash-completion,lintian} "$tree"/var/cache/apt \
	"$tree"/usr/lib/aarch64-linux-gnu/{perl,perl-base,gconv} "$tree"/usr/bin/perl*
# busybox-static ships only /bin/busybox: link the applets the agent and initramfs use, where the
# packages do not already provide the real tool.
applets="sh mount umount mountpoint readlink mkdir cat echo sleep sync poweroff reboot insmod switch_root
	sha256sum find sort xargs grep sed ls ln cp tr head tail printf test kill awk wc rm mv chmod
	cut dd uname stat true false basename dirname"
for a in $applets; do
	for d in bin sbin usr/bin usr/sbin; do
		[ -e "$tree/$d/$a" ] && continue 2
	done
	ln -s busybox "$tree/bin/$a"
done
mkdir -p "$tree"/{boot,uboot,data,proc,sys,dev,run,tmp,mnt/bundles,etc/ota-test,etc/rauc,var/lib}
rm -rf "$tree/var/run"
ln -s /run "$tree/var/run" # GDBus finds the system bus under /var/run
cat > "$tree/etc/passwd" <<-'EOF'
	root:x:0:0:root:/root:/bin/sh
	messagebus:x:100:101::/nonexistent:/usr/sbin/nologin
EOF
cat > "$tree/etc/group" <<-'EOF'
	root:x:0:
	messagebus:x:101:
EOF
echo 0123456789abcdef0123456789abcdef > "$tree/etc/machine-id"
install -m 0644 "$here/guest/de.pengutronix.rauc.conf" "$tree/etc/dbus-1/system.d/"
install -m 0755 "$here/guest/ota-agent" "$tree/sbin/init"
subst "$layer/dynamic-layers/rauc/recipes-core/rauc/files/system.conf" > "$tree/etc/rauc/system.conf"
install -m 0644 "$pki/test-ca.cert.pem" "$tree/etc/rauc/ca.cert.pem"
install -m 0644 "$layer/recipes-bsp/u-boot/files/fw_env.config" "$tree/etc/fw_env.config"
# The product's configuration defaults in the slot, and the script that replaces them with the data
# partition's copies at boot (docs/ota.md, "Persistent data").
mkdir -p "$tree/etc/rtpmgr" "$tree/etc/modprobe.d" "$tree/etc/init.d" "$tree/var/log/rtpmgr"
cp "$(layer_file recipes-apps/rtp-feeder/files/feeder.toml)" "$tree/etc/rtpmgr/feeder.toml"
cp "$(layer_file recipes-kernel/rtp-mgr/files/rtp_mgr.conf)" "$tree/etc/modprobe.d/rtp_mgr.conf"
# Where the rtpmgr-data recipe installs it (meta-rtpmgr/files/install.manifest).
install -D -m 0755 "$layer/recipes-bsp/rtpmgr-data/files/rtpmgr-data.init" "$tree/usr/libexec/rtpmgr/rtpmgr-data"

# Kernel, modules for RAUC (vfat for /boot, loop + squashfs + dm-verity for verity bundles) and the
# fw_cfg driver the agent reads its action from.
initrd_mods="virtio_pci virtio_blk ext4"
root_mods="qemu_fw_cfg vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1 loop squashfs dm-verity"
for m in $(modlist $initrd_mods $root_mods); do
	install -D -m 0644 "$kroot$m" "$tree$m"
done
modlist $root_mods > "$tree/etc/ota-test/modules.list"
install -m 0644 "$kimage" "$tree/boot/Image"

# ---------------------------------------------------------------- initramfs (busybox only)
ird=$out/initramfs
rm -rf "$ird"
mkdir -p "$ird"/{bin,proc,sys,dev,newroot}
install -m 0755 "$tree/bin/busybox" "$ird/bin/busybox"
for a in sh mount umount insmod sleep cat switch_root reboot mkdir; do ln -s busybox "$ird/bin/$a"; done
install -m 0755 "$here/guest/initramfs-init" "$ird/init"
for m in $(modlist $initrd_mods); do
	install -D -m 0644 "$kroot$m" "$ird$m"
done
modlist $initrd_mods > "$ird/modules.list"
(cd "$ird" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$tree/boot/initrd.img"

# ---------------------------------------------------------------- slot images
# Size to the content plus headroom, so RAUC's copy (and the bundle) stay small.
root_mib=$(( $(du -sm "$tree" | cut -f1) * 5 / 4 + 16 ))
[ "$root_mib" -lt "$slot_mib" ] || die "root filesystem ($root_mib MiB) does not fit a $slot_mib MiB slot"
make_rootfs() { # version image
	echo "$1" > "$tree/etc/rtpmgr-version"
	rm -f "$2"
	mkfs.ext4 -q -F -L rootfs -d "$tree" -E root_owner=0:0 "$2" "${root_mib}M"
}
make_rootfs 1 "$out/rootfs-v1.ext4"
make_rootfs 2 "$out/rootfs-v2.ext4"
log "root filesystem images: $root_mib MiB"

# ---------------------------------------------------------------- boot partition
bp=$out/parts
rm -rf "$bp"
mkdir -p "$bp"
subst "$layer/recipes-bsp/u-boot/files/boot.cmd.in" > "$bp/boot.cmd"
mkimage -A arm64 -O linux -T script -C none -n "rtpmgr A/B boot" -d "$bp/boot.cmd" "$bp/boot.scr" >/dev/null
# Both copies of the boot state start out equal (flags 1): copy 0 is current for both readers.
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' > "$bp/bootstate.txt"
mkenvimage -r -s 0x4000 -o "$bp/uboot.env" "$bp/bootstate.txt"
cp "$bp/uboot.env" "$bp/uboot-redund.env"
mkfs.vfat -F 32 -n BOOT -C "$bp/boot.vfat" $((boot_mib * 1024)) >/dev/null
mcopy -i "$bp/boot.vfat" "$bp/boot.scr" "$bp/uboot.env" "$bp/uboot-redund.env" ::/

# ---------------------------------------------------------------- data partition
# The product's persistent layout: /data/rtpmgr/etc (ring and feeder configuration), /data/rtpmgr/log.
# The files are meta-rtpmgr's when they exist, so scenario 5 checks the product's own files.
dt=$out/data-tree
rm -rf "$dt"
# No /data/rauc: the product creates none either, RAUC makes its data-directory at the first install.
mkdir -p "$dt/rtpmgr/etc" "$dt/rtpmgr/log"
# A box that has run for a while: the operator changed the ring and feeder configuration (so the
# data partition's copies differ from the slot's defaults), and the services wrote logs.
cp "$(layer_file recipes-kernel/rtp-mgr/files/rtp_mgr.conf)" "$dt/rtpmgr/etc/rtp_mgr.conf"
echo "# site: larger rings for the 4K channels" >> "$dt/rtpmgr/etc/rtp_mgr.conf"
cp "$(layer_file recipes-apps/rtp-app/files/rtp-rx.default)" "$dt/rtpmgr/etc/rtp-rx.default"
cp "$(layer_file recipes-apps/rtp-feeder/files/feeder.toml)" "$dt/rtpmgr/etc/feeder.toml"
echo "# site: edited by the operator on the box" >> "$dt/rtpmgr/etc/feeder.toml"
for i in 1 2 3; do
	echo "2026-11-22T06:0$i:00Z rtp_app[42]: channel 0 rx 1200 pkts, 0 drops" >> "$dt/rtpmgr/log/rtp-rx.log"
	echo "2026-11-22T06:0$i:00Z rtp-feeder[43]: pushed 1200 slots" >> "$dt/rtpmgr/log/rtp-feeder.log"
done
rm -f "$bp/data.ext4"
mkfs.ext4 -q -F -L data -d "$dt" -E root_owner=0:0 "$bp/data.ext4" "${data_mib}M"

# ---------------------------------------------------------------- disk image
golden=$out/disk-golden.img
rm -f "$golden"
total_mib=$((1 + boot_mib + 2 * slot_mib + data_mib))
truncate -s "${total_mib}M" "$golden"
sfdisk -q "$golden" <<-EOF
	label: dos
	label-id: 0x5274706d
	start=1MiB, size=${boot_mib}MiB, type=c, bootable
	size=${slot_mib}MiB, type=83
	size=${slot_mib}MiB, type=83
	size=${data_mib}MiB, type=83
EOF
put() { # file start-mib
	dd if="$1" of="$golden" bs=1M seek="$2" conv=notrunc,sparse status=none
}
put "$bp/boot.vfat" 1
put "$out/rootfs-v1.ext4" $((1 + boot_mib))
put "$bp/data.ext4" $((1 + boot_mib + 2 * slot_mib))
echo "$((1 + boot_mib)) $((1 + boot_mib + slot_mib)) $((1 + boot_mib + 2 * slot_mib)) $slot_mib $data_mib" > "$out/layout"

# ---------------------------------------------------------------- U-Boot board environment (pflash)
# Replaces qemu_arm64's default environment: no 8-11 s distro boot scan, just boot.scr from p1.
cat > "$bp/flash-env.txt" <<-'EOF'
	bootdelay=0
	devtype=virtio
	devnum=0
	kernel_addr_r=0x40400000
	ramdisk_addr_r=0x44000000
	fdt_addr_r=0x40000000
	scriptaddr=0x40200000
	bootcmd=virtio scan; if load ${devtype} ${devnum}:1 ${scriptaddr} boot.scr; then source ${scriptaddr}; fi; echo OTA-UBOOT: boot.scr failed; reset
EOF
mkenvimage -s 0x40000 -o "$out/flash1.img" "$bp/flash-env.txt"
truncate -s 64M "$out/flash1.img"

# ---------------------------------------------------------------- bundles
bundle() { # version signer out
	local d=$out/bundle-src
	rm -rf "$d"
	mkdir -p "$d"
	cp "$out/rootfs-v$1.ext4" "$d/rootfs.ext4"
	install -m 0755 "$layer/dynamic-layers/rauc/recipes-core/bundles/files/rtpmgr-bundle-hook.sh" "$d/hook.sh"
	cat > "$d/manifest.raucm" <<-EOF
		[update]
		compatible=$compatible
		version=$1

		[bundle]
		format=verity

		[hooks]
		filename=hook.sh
		hooks=install-check

		[image.rootfs]
		filename=rootfs.ext4
	EOF
	rm -f "$3"
	rauc bundle --cert="$pki/$2.cert.pem" --key="$pki/$2.key.pem" \
		--keyring="$pki/${2%-signer}-ca.cert.pem" "$d" "$3" >/dev/null 2>&1 || die "rauc bundle failed for $3"
	rm -rf "$d"
}
bd=$out/bundles
rm -rf "$bd"
mkdir -p "$bd"
bundle 2 test-signer "$bd/good.raucb"
bundle 2 other-signer "$bd/wrong-ca.raucb"
size=$(stat -c %s "$bd/good.raucb")
# Tampered copies of the good bundle: one byte flipped in the signed manifest/signature (CMS at
# the end), and one in the middle of the payload (the squashfs holding rootfs.ext4).
flip() { # in out offset
	cp "$1" "$2"
	local b
	b=$(dd if="$1" bs=1 skip="$3" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(( b ^ 0xff )))" | dd of="$2" bs=1 seek="$3" conv=notrunc status=none
}
flip "$bd/good.raucb" "$bd/tampered-signature.raucb" $((size - 600))
flip "$bd/good.raucb" "$bd/tampered-payload.raucb" $((size / 3))
rauc info --keyring="$pki/test-ca.cert.pem" "$bd/good.raucb" >/dev/null 2>&1 || die "good bundle does not verify on the host"
rm -f "$out/bundles.img"
mkfs.ext4 -q -F -L bundles -d "$bd" -E root_owner=0:0 "$out/bundles.img" $(( $(du -sm "$bd" | cut -f1) + 16 ))M
log "bundles: $(ls "$bd" | tr '\n' ' ')"
log "done: $golden"
