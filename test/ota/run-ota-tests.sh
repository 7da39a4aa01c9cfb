#!/bin/bash
# OTA test: signed A/B updates with real RAUC and real U-Boot, in QEMU aarch64 (TCG).
#
# Builds the test system (test/ota/build-image.sh: Debian arm64 kernel + packages, meta-rtpmgr's
# boot.cmd.in, system.conf and fw_env.config), then proves, each from a fresh copy of the disk:
#   1 a bundle signed by the test CA installs into the inactive slot, the guest reboots into it
#     (version marker) and `rauc status mark-good` commits it
#   2 bundles signed by another CA or tampered with are rejected; the inactive slot is untouched
#   3 power cut (QEMU killed) while RAUC writes the inactive slot: the next boot comes up on the old
#     slot, intact; and a torn write of the boot state (the newest of its two copies) still boots
#     the committed slot
#   4 a slot that never marks itself good falls back to the old slot after its 3 attempts
#   5 the data partition's files (/data/rtpmgr) are unchanged by updates and fallbacks
# Every boot is one bounded QEMU run (-no-reboot, under timeout) driven by an action passed with
# -fw_cfg; console logs: build/ota/logs/. Prints PASS/FAIL per scenario and "N passed, N failed".
#
# Usage: test/ota/run-ota-tests.sh [--no-deps]    (root: installs its apt dependencies)
# Runtime on 2 cores: ~1 min to build (first run; later runs reuse the downloads), ~3 min of boots.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OTA_OUT:-$repo/build/ota}
logs=$out/logs
run=$out/run
lock=/tmp/rtpmgr/heavy.lock
uboot=/usr/lib/u-boot/qemu_arm64/u-boot.bin
boot_timeout=${OTA_BOOT_TIMEOUT:-180}

t0=$(date +%s)
say() { echo "[ota] $*"; }

# ---------------------------------------------------------------- host dependencies
# The packages come from scripts/setup-host.sh (one list, installed under the machine's heavy lock so
# that concurrent runs do not race in apt); this re-check costs a second when all is there.
install_deps() {
	"$repo/scripts/setup-host.sh" >/dev/null || { echo "scripts/setup-host.sh failed" >&2; exit 2; }
}
[ "${1:-}" = "--no-deps" ] || install_deps

mkdir -p /tmp/rtpmgr
"$here/build-image.sh" || { echo "building the test system failed"; echo "0 passed, 5 failed"; exit 1; }
t_built=$(date +%s)
rm -rf "$logs" "$run"
mkdir -p "$logs" "$run"
read -r p2_mib p3_mib p4_mib slot_mib data_mib < "$out/layout"

# ---------------------------------------------------------------- helpers
errors=()
check() { # description, then a command that must succeed
	local what=$1
	shift
	if "$@"; then
		echo "    ok: $what"
	else
		echo "    NOT OK: $what"
		errors+=("$what")
	fi
}

# boot NAME DISK ACTION [KILL_AT_KIB]: one power-on to power-off; with KILL_AT_KIB the power is cut
# (QEMU SIGKILLed) once the guest reports that RAUC wrote that much to the inactive slot.
# The shared heavy-work lock is held for this one boot only, so others can run between boots.
lock_wait=0
boot() {
	local name=$1 disk=$2 action=$3 kill_at=${4:-} log=$logs/$1.log pidf=$run/qemu.pid
	# shellcheck disable=SC2054 # the commas belong to QEMU's -drive options
	local cmd=(timeout -s KILL "$boot_timeout" qemu-system-aarch64 -M virt -cpu cortex-a57 -m 1024 -smp 2
		-nographic -no-reboot -nic none -bios "$uboot"
		-drive if=pflash,format=raw,index=1,file="$out/flash1.img",readonly=on
		-drive if=none,id=disk,format=raw,file="$disk" -device virtio-blk-pci,drive=disk
		-drive if=none,id=bundles,format=raw,file="$out/bundles.img",readonly=on
		-device virtio-blk-pci,drive=bundles
		-fw_cfg name=opt/ota/action,string="$action" -pidfile "$pidf")
	local lfd t=$SECONDS
	exec {lfd}>>"$lock"
	# Unless a caller already holds it (`scripts/heavy-lock make test`): a second flock would wait
	# for that caller, i.e. for itself, forever.
	"$repo/scripts/heavy-lock" --held-by-caller || flock "$lfd"
	lock_wait=$((lock_wait + SECONDS - t))
	t=$SECONDS
	rm -f "$pidf"
	if [ -z "$kill_at" ]; then
		"${cmd[@]}" < /dev/null > "$log" 2>&1 {lfd}>&-
	else
		# In a subshell whose stderr is dropped: QEMU's SIGKILL makes timeout die by the same
		# signal, and bash's "Killed" notice about it is expected here, not an error.
		("${cmd[@]}" < /dev/null > "$log" 2>&1 {lfd}>&- || true) 2>/dev/null &
		local bg=$! kib
		while kill -0 $bg 2>/dev/null; do
			kib=$(tr -d '\r' < "$log" | sed -n 's/^OTA-WRITTEN-KIB: //p' | tail -n1)
			if [ -n "$kib" ] && [ "$kib" -ge "$kill_at" ] && [ -s "$pidf" ]; then
				kill -KILL "$(cat "$pidf")"
				echo "OTA-HOST: power cut (SIGKILL) after $kib KiB written to the inactive slot" >> "$log"
				break
			fi
			sleep 0.2
		done
		wait $bg
	fi
	exec {lfd}>&-
	say "  boot $name ($action): slot $(slot_of "$name") version $(version_of "$name"), $((SECONDS - t)) s"
}

agent_line() { tr -d '\r' < "$logs/$1.log" | grep -a '^OTA-AGENT: slot=' | tail -n1; }
slot_of() { agent_line "$1" | sed -n 's/^OTA-AGENT: slot=\([^ ]*\) version=.*/\1/p'; }
version_of() { agent_line "$1" | sed -n 's/^OTA-AGENT: slot=[^ ]* version=\(.*\)$/\1/p'; }
# No grep -q after a pipe: it exits at the first match, the writer then dies of SIGPIPE and
# pipefail turns a found line into a failure (seen as a flaky scenario 2).
has() { tr -d '\r' < "$logs/$1.log" | grep -a -- "$2" >/dev/null; }
booted() { [ "$(slot_of "$1")" = "$2" ] && [ "$(version_of "$1")" = "$3" ]; }
finished() { has "$1" '^OTA-AGENT-DONE'; }

part_sha() { # disk start-mib size-mib
	dd if="$1" bs=1M skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1
}
# Files, modes and owners of /rtpmgr on the data partition, read without mounting (debugfs).
data_sha() { # disk
	local d=$run/data-check
	rm -rf "$d" && mkdir -p "$d/tree"
	dd if="$1" of="$d/p4.img" bs=1M skip="$p4_mib" count="$data_mib" status=none
	debugfs -R "rdump /rtpmgr $d/tree" "$d/p4.img" >/dev/null 2>&1
	(cd "$d/tree" && find . -printf '%p %m %U %G %s\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum) |
		sha256sum | cut -d' ' -f1
	rm -rf "$d"
}
data_has() { # disk path
	local d=$run/data-check
	mkdir -p "$d"
	dd if="$1" of="$d/p4.img" bs=1M skip="$p4_mib" count="$data_mib" status=none
	debugfs -R "stat $2" "$d/p4.img" 2>/dev/null | grep 'Type: regular' >/dev/null
	local rc=$?
	rm -rf "$d"
	return $rc
}
fresh() { cp --sparse=always "$out/disk-golden.img" "$run/$1.img"; echo "$run/$1.img"; }

results=()
passed=0
failed=0
scenario() { # number title (runs s<number>)
	local t=$SECONDS timing
	errors=()
	lock_wait=0
	say "scenario $1: $2"
	"s$1"
	timing="$((SECONDS - t - lock_wait)) s"
	[ "$lock_wait" -gt 0 ] && timing="$timing + $lock_wait s waiting for the shared lock"
	if [ ${#errors[@]} -eq 0 ]; then
		results+=("PASS scenario $1: $2 ($timing)")
		passed=$((passed + 1))
	else
		results+=("FAIL scenario $1: $2 ($timing): $(IFS=';'; echo "${errors[*]}")")
		failed=$((failed + 1))
	fi
	echo "${results[-1]}"
}

golden=$out/disk-golden.img
sha_a_golden=$(part_sha "$golden" "$p2_mib" "$slot_mib")
sha_b_golden=$(part_sha "$golden" "$p3_mib" "$slot_mib")
data_golden=$(data_sha "$golden")

# ---------------------------------------------------------------- scenarios
s1() {
	local disk
	disk=$(fresh s1)
	boot s1-1-install "$disk" "install good.raucb"
	check "install of good.raucb succeeded" has s1-1-install '^OTA-INSTALL: file=good.raucb rc=0 '
	check "RAUC activated slot B (BOOT_ORDER=B A)" has s1-1-install '^OTA-ENV-AFTER-INSTALL: BOOT_ORDER=B A '
	check "the install boot ran on slot A, version 1" booted s1-1-install A 1
	check "the update was installed with a read-only root filesystem" has s1-1-install '^OTA-ROOTFS: ro$'
	# Scenario 4 starts from here: installed, never marked good.
	cp --sparse=always "$disk" "$run/s4.img"
	boot s1-2-markgood "$disk" mark-good
	check "rebooted into slot B, version 2" booted s1-2-markgood B 2
	check "rauc status mark-good committed slot B" has s1-2-markgood 'marked slot rootfs.1 as good'
	check "slot B has its 3 attempts again" has s1-2-markgood '^OTA-ENV-AFTER-MARK: BOOT_ORDER=B A BOOT_A_LEFT=[0-9] BOOT_B_LEFT=3'
	boot s1-3-again "$disk" status
	check "next boot is slot B again, version 2" booted s1-3-again B 2
	check "slot B runs with a read-only root filesystem" has s1-3-again '^OTA-ROOTFS: ro$'
	check "RAUC records bundle version 2 for slot B" has s1-3-again "^OTA-RAUC: RAUC_SLOT_STATUS_BUNDLE_VERSION_.*='2'"
	check "slot A (the fallback) is unchanged" [ "$(part_sha "$disk" "$p2_mib" "$slot_mib")" = "$sha_a_golden" ]
	local img_sha img_size
	img_sha=$(sha256sum < "$out/rootfs-v2.ext4" | cut -d' ' -f1)
	img_size=$(stat -c %s "$out/rootfs-v2.ext4")
	check "slot B holds exactly the bundle's image (sha256 of /dev/vda3's first $img_size bytes)" \
		[ "$(dd if="$disk" bs=1M skip="$p3_mib" status=none | head -c "$img_size" | sha256sum | cut -d' ' -f1)" = "$img_sha" ]
	check "RAUC recorded that checksum for slot B" has s1-3-again "^OTA-RAUC: RAUC_SLOT_STATUS_CHECKSUM_SHA256_.*='$img_sha'"
	cp --sparse=always "$disk" "$run/s1-final.img"
}

s2() {
	local disk f
	disk=$(fresh s2)
	boot s2-reject "$disk" "reject wrong-ca.raucb tampered-signature.raucb tampered-payload.raucb"
	for f in wrong-ca tampered-signature tampered-payload; do
		check "$f.raucb rejected" has s2-reject "^OTA-INSTALL: file=$f.raucb rc=[1-9]"
		check "nothing written to slot B for $f.raucb" has s2-reject "^OTA-INSTALL: file=$f.raucb rc=[0-9]* written-kib=0$"
	done
	check "wrong CA: signature verification failed" has s2-reject 'wrong-ca.raucb: signature verification failed'
	check "tampered payload: rejected by the install-check hook before any write" has s2-reject 'Bundle rejected: Hook returned: bundle payload is corrupted'
	check "slot B bytes unchanged (sha256 of /dev/vda3)" [ "$(part_sha "$disk" "$p3_mib" "$slot_mib")" = "$sha_b_golden" ]
	check "boot order unchanged (A B)" has s2-reject '^OTA-ENV-AFTER-INSTALL: BOOT_ORDER=A B '
	check "still running slot A, version 1" booted s2-reject A 1
}

# The copy of the boot state that is current (newer counter, good CRC) inside a disk image.
env_copy() { # disk copy-index -> file
	local f=uboot.env
	[ "$2" = 1 ] && f="uboot-redund.env"
	mcopy -n -i "$1@@1M" "::$f" "$run/$f.$3"
	echo "$run/$f.$3"
}
flags_of() { dd if="$1" bs=1 skip=4 count=1 status=none | od -An -tu1 | tr -d ' '; }

s3() {
	local disk sha_b_cut
	# a) power cut while RAUC writes the inactive slot
	disk=$(fresh s3)
	boot s3-1-cut "$disk" "install good.raucb" 32768
	check "power was cut during the install" has s3-1-cut '^OTA-HOST: power cut'
	check "the install never finished" bash -c "! tr -d '\r' < '$logs/s3-1-cut.log' | grep -q '^OTA-INSTALL:'"
	sha_b_cut=$(part_sha "$disk" "$p3_mib" "$slot_mib")
	check "slot B was partly written when the power went" [ "$sha_b_cut" != "$sha_b_golden" ]
	boot s3-2-after-cut "$disk" mark-good
	check "next boot comes up on the old slot A, version 1" booted s3-2-after-cut A 1
	check "and finishes its boot (mark-good)" has s3-2-after-cut 'marked slot rootfs.0 as good'
	check "slot A is intact (sha256 of /dev/vda2)" [ "$(part_sha "$disk" "$p2_mib" "$slot_mib")" = "$sha_a_golden" ]
	cp --sparse=always "$disk" "$run/s3-final.img"

	# b) power cut while the boot state is written: a torn newest copy. Start from scenario 1's end
	# (slot B committed, BOOT_ORDER="B A"); tear the newest copy by putting half of a different
	# state ("A B") over it, as an interrupted write would leave it.
	disk=$run/s3-torn.img
	cp --sparse=always "$run/s1-final.img" "$disk"
	local c0 c1 f0 f1 cur torn
	c0=$(env_copy "$disk" 0 s3)
	c1=$(env_copy "$disk" 1 s3)
	f0=$(flags_of "$c0")
	f1=$(flags_of "$c1")
	cur=0
	[ $(((f0 - f1 + 256) % 256)) -ge 128 ] && cur=1
	torn=$run/torn.env
	printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' > "$run/rollback.txt"
	mkenvimage -r -s 0x4000 -o "$run/rollback.env" "$run/rollback.txt"
	cp "$([ $cur = 0 ] && echo "$c0" || echo "$c1")" "$torn"
	dd if="$run/rollback.env" of="$torn" bs=1 count=24 conv=notrunc status=none   # crc, flags, start of data
	mcopy -o -i "$disk@@1M" "$torn" "::$([ $cur = 0 ] && echo uboot.env || echo uboot-redund.env)"
	echo "    tore copy$cur (flags $f0/$f1)"
	boot s3-3-torn-env "$disk" status
	check "U-Boot rejects the torn copy$cur (bad CRC)" has s3-3-torn-env "^OTA-ENV: .*copy$cur ok=0"
	check "and still boots the committed slot B, version 2" booted s3-3-torn-env B 2
	check "Linux (libubootenv) reads the same state: BOOT_ORDER=B A" has s3-3-torn-env '^OTA-ENV: BOOT_ORDER=B A'
	# What a single copy would do: with no valid state the defaults boot slot A, a silent rollback.
	cp "$torn" "$run/torn-other.env"
	dd if=/dev/zero of="$run/torn-other.env" bs=1 seek=100 count=16 conv=notrunc status=none
	mcopy -o -i "$disk@@1M" "$run/torn-other.env" "::$([ $cur = 0 ] && echo uboot-redund.env || echo uboot.env)"
	mcopy -o -i "$disk@@1M" "$torn" "::$([ $cur = 0 ] && echo uboot.env || echo uboot-redund.env)"
	boot s3-4-both-torn "$disk" status
	check "control: with no intact copy U-Boot falls back to the defaults (slot A)" booted s3-4-both-torn A 1
}

s4() {
	local disk=$run/s4.img i
	for i in 1 2 3; do
		boot "s4-$i-no-mark-good" "$disk" status
		check "attempt $i boots the new slot B" booted "s4-$i-no-mark-good" B 2
	done
	check "the last attempt left B with 0 attempts" has s4-3-no-mark-good 'OTA-BOOT: slot B .*attempts left A=[0-9] B=0'
	boot s4-4-fallback "$disk" mark-good
	check "after 3 attempts U-Boot falls back to slot A, version 1" booted s4-4-fallback A 1
	check "RAUC sees slot B as bad" has s4-4-fallback "^OTA-RAUC: RAUC_SLOT_BOOT_STATUS_1='bad'"
	check "the old slot marks itself good" has s4-4-fallback 'marked slot rootfs.0 as good'
	check "slot A is unchanged" [ "$(part_sha "$disk" "$p2_mib" "$slot_mib")" = "$sha_a_golden" ]
	cp --sparse=always "$disk" "$run/s4-final.img"
}

s5() {
	local img log sha
	for img in s1-final s3-final s4-final; do
		if [ -f "$run/$img.img" ]; then
			check "/data/rtpmgr files, modes, owners unchanged after $img" [ "$(data_sha "$run/$img.img")" = "$data_golden" ]
		else
			check "$img.img exists (its scenario ran)" false
		fi
	done
	check "RAUC's status file persisted on the data partition" data_has "$run/s1-final.img" /rauc/central.raucs
	# The guest's own view, every boot: one checksum for all of them.
	sha=$(for log in "$logs"/*.log; do tr -d '\r' < "$log" | sed -n 's/^OTA-DATA-SHA: //p'; done | sort -u)
	check "every boot saw the same /data/rtpmgr: $(echo "$sha" | wc -l) distinct checksum" [ "$(echo "$sha" | wc -l)" = 1 ]
	check "the product files are there: feeder.toml, rtp_mgr.conf, logs" \
		bash -c "ls '$out/data-tree/rtpmgr/etc/feeder.toml' '$out/data-tree/rtpmgr/etc/rtp_mgr.conf' '$out/data-tree/rtpmgr/log/rtp-rx.log' >/dev/null"
	# rtpmgr-data bound the data partition's configuration over the slot's defaults in every boot,
	# on slot A and on slot B alike.
	local feeder ring bad=0 n=0
	feeder=$(sha256sum < "$out/data-tree/rtpmgr/etc/feeder.toml" | cut -d' ' -f1)
	ring=$(sha256sum < "$out/data-tree/rtpmgr/etc/rtp_mgr.conf" | cut -d' ' -f1)
	for log in "$logs"/*.log; do
		has "$(basename "$log" .log)" '^OTA-AGENT: ' || continue
		n=$((n + 1))
		has "$(basename "$log" .log)" "^OTA-PERSIST: bound=yes etc=$feeder data=$feeder modprobe=$ring" || bad=$((bad + 1))
	done
	check "all $n boots ran with the operator's feeder.toml and rtp_mgr.conf from /data ($bad did not)" [ "$bad" = 0 ]
}

scenario 1 "signed bundle installs into the inactive slot, boots it, mark-good commits it"
scenario 2 "wrongly signed and tampered bundles are rejected, inactive slot untouched"
scenario 3 "power cut during install boots the old slot intact; a torn boot-state write is survived"
scenario 4 "a slot that never marks itself good falls back after its attempts run out"
scenario 5 "the data partition's contents are unchanged by updates"

echo
echo "OTA summary (build $((t_built - t0)) s, total $(( $(date +%s) - t0 )) s, logs in $logs):"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
