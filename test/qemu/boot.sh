#!/usr/bin/env bash
# boot.sh JOB [KERNEL_ARGS...] - boot the test image under qemu-system-aarch64 (TCG) and run one job.
#
#   JOB: demo (live RTP stream, summary) or test (on-device test suite)
#   KERNEL_ARGS: extra kernel command line, e.g. rtpmgr.suites=kernel or rtp_mgr.ring_order=99
#
# The guest console streams to the terminal and to $BUILD/logs/console-JOB.log. The boot is bounded by
# RTPMGR_QEMU_TIMEOUT seconds (default 900); a hung or panicking guest is killed, and the failing step
# is named from the guest's "@@RTPMGR step=..." markers. Exit status 0 only if the guest finished the
# job and every step passed.
#
# The bench and demo jobs get a NIC: a virtio-net device whose other end is `rtpmgr-bench peer` on this
# host (QEMU -netdev dgram: each Ethernet frame is one UDP datagram on 127.0.0.1), so that RTP enters
# the guest through its NIC from a sender outside it, as on a set-top box. The guest is 10.77.0.2,
# the host peer 10.77.0.1 (it answers ARP and builds the frames, so the guest sees a real source
# address for source-specific multicast). The peer is $CARGO_TARGET_DIR/release/rtpmgr-bench (host
# build: `make bench-peer`); its log is $BUILD/logs/peer-JOB.log. RTPMGR_QEMU_NET=0|1 overrides
# which jobs get the NIC.
#
# RTPMGR_KERNEL=debug boots $BUILD/image-debug (the sanitizer kernel, RTPMGR_KERNEL=debug build-image.sh)
# instead, with 2 GiB (KASAN's shadow and kmemleak's metadata) and kernel warnings on the console;
# its console log is $BUILD/logs/console-JOB-debug.log.
set -euo pipefail
# shellcheck source=test/qemu/lib.sh
. "$(dirname "$0")/lib.sh"

job=${1:?usage: boot.sh demo|test [kernel args...]}
shift
timeout_s=${RTPMGR_QEMU_TIMEOUT:-900}
case "${RTPMGR_KERNEL:-debian}" in
debian) suffix="" mem=1024 kargs="" ;;
# loglevel=5 after quiet: lockdep and WARN reports (KERN_WARNING) reach the console log too.
# rtpmgr.apparmor=off: the sanitizer kernel is built without AppArmor (debug-kernel.config); the
# Debian kernel's boots enforce the layer's profiles (test/qemu/init).
debug) suffix=-debug mem=2048 kargs="loglevel=5 rtpmgr.apparmor=off" ;;
*) step "guest: boot"; fail "RTPMGR_KERNEL=$RTPMGR_KERNEL: known kernels are debian (default) and debug" ;;
esac
mem=${RTPMGR_QEMU_MEM:-$mem}
img=$BUILD/image$suffix
[ -f "$img/Image" ] && [ -f "$img/initrd.gz" ] || { step "guest: boot"; fail "no image in $img: run ${RTPMGR_KERNEL:+RTPMGR_KERNEL=$RTPMGR_KERNEL }test/qemu/build-image.sh"; }
mkdir -p "$BUILD/logs"
console=$BUILD/logs/console-$job$suffix.log

# The NIC (bench and demo): QEMU's end and the peer's end of the dgram link on two free ports.
netargs=(-nic none)
peer_pid=""
case "${RTPMGR_QEMU_NET:-auto}:$job" in
1:* | auto:bench | auto:demo)
	peer=$CARGO_TARGET_DIR/release/rtpmgr-bench
	[ -x "$peer" ] || { step "guest: network"; fail "no host build of rtpmgr-bench at $peer (run: make bench-peer)"; }
	read -r qport pport < <(python3 -c 'import socket
s = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
	"$peer" peer --listen "127.0.0.1:$pport" --qemu "127.0.0.1:$qport" >"$BUILD/logs/peer-$job.log" 2>&1 &
	peer_pid=$!
	trap '[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null' EXIT
	netargs=(-nic none -netdev "dgram,id=net0,local.type=inet,local.host=127.0.0.1,local.port=$qport,remote.type=inet,remote.host=127.0.0.1,remote.port=$pport"
		-device virtio-net-device,netdev=net0,mac=52:54:00:77:00:02)
	info "guest NIC: virtio-net 10.77.0.2 <-> host peer 10.77.0.1 (pid $peer_pid, udp 127.0.0.1:$pport <-> qemu :$qport)"
	;;
esac

step "guest: boot qemu-system-aarch64 (TCG, cortex-a57, 2 vCPUs, ${RTPMGR_KERNEL:-debian} kernel) and run '$job'"
info "console log: $console (timeout ${timeout_s}s)"
# kpti=0: the Debian kernel forces KPTI under KASLR, which makes every syscall ~10x dearer under TCG.
# log_buf_len, audit_backlog_limit: no AppArmor audit line of a whole test run is lost before /init's
# final check for denials (there is no auditd: kauditd prints them to the kernel log).
cmdline="console=ttyAMA0 panic=-1 quiet $kargs kpti=0 log_buf_len=4M audit_backlog_limit=8192 rtpmgr.job=$job $*"
start=$(date +%s)
set +e
with_lock timeout --kill-after=10 "$timeout_s" qemu-system-aarch64 -M virt -cpu cortex-a57 -m "$mem" -smp 2 \
	-nographic -no-reboot "${netargs[@]}" -kernel "$img/Image" -initrd "$img/initrd.gz" \
	-append "$cmdline" </dev/null 2>&1 | tr -d '\r' | tee "$console" | sed -u 's/^/  | /'
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

tail_console() { printf '\nLast lines of the guest console (%s):\n' "$console"; tail -n 25 "$console" | sed 's/^/  | /'; }
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	tail_console
	step "guest: $job"
	fail "the guest did not finish within ${timeout_s}s and was killed"
fi
if ! grep -q '^@@RTPMGR done rc=' "$console"; then
	tail_console
	last=$(grep -o '^@@RTPMGR step=[^ ]*' "$console" | tail -n1 | sed 's/.*step=//')
	step "guest: $job"
	fail "the guest stopped without finishing its job (qemu exit $qrc; last step passed: ${last:-none}; kernel panic?)"
fi
summary=$(sed -n 's/^@@RTPMGR summary //p' "$console" | tail -n1)
if [ -n "$summary" ]; then
	printf '\n  %s: %s\n' "$job" "$summary" | sed 's/ verdict=/ -> /'
fi
failed=$(sed -n 's/^@@RTPMGR step=\([^ ]*\) fail.*/\1/p' "$console" | tr '\n' ' ')
if [ -n "$failed" ]; then
	grep '^@@RTPMGR step=.* fail' "$console" | sed 's/^@@RTPMGR /  /'
	step "guest: ${failed%% *}"
	fail "failed in the guest: $failed(console: $console)"
fi
rc=$(sed -n 's/^@@RTPMGR done rc=//p' "$console" | tail -n1)
[ "$rc" = 0 ] || { step "guest: $job"; fail "guest job exited $rc (console: $console)"; }
info "guest finished '$job' in ${elapsed}s, every step passed"
