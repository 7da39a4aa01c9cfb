#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# load-unload.sh - load/unload test of the rtp_mgr module (TAP output).
#
# Usage: load-unload.sh [path/to/rtp_mgr.ko]
#   With a path it uses insmod/rmmod, without one modprobe/rmmod.
#   ITERATIONS=N overrides the 100 load/unload cycles.
# Needs root. Running rtp-rx/rtp-feeder services are stopped for the test;
# a module that was loaded before is loaded again at the end and the
# services are started again.
# POSIX sh: runs under busybox as well as bash/dash.

set -u

KO=${1:-}
ITERATIONS=${ITERATIONS:-100}
n=0
passed=0
failed=0

ok() {
	n=$((n + 1))
	passed=$((passed + 1))
	echo "ok $n - $1"
}

not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}

check() {
	# check NAME COMMAND...: one TAP line for the command's status
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

load() {
	if [ -n "$KO" ]; then
		insmod "$KO" "$@"
	else
		modprobe rtp_mgr "$@"
	fi
}

loaded() {
	grep -q '^rtp_mgr ' /proc/modules
}

# Kernel log lines written since mark_log was last called.
mark_log() {
	log_mark=$(dmesg | wc -l)
}

new_log() {
	dmesg | tail -n +$((log_mark + 1))
}

param() {
	cat "/sys/module/rtp_mgr/parameters/$1"
}

echo "TAP version 13"
echo "1..9"

if [ -n "$KO" ] && [ ! -f "$KO" ]; then
	echo "Bail out! $KO not found"
	echo "0 passed, 1 failed"
	exit 1
fi

# The shipped services keep channels open. Stop the running ones for the
# test and start them again at the end, after the module is back.
stopped_services=""
openers_before=0
# openers N: how many open files channel N has now (0 without the module).
openers() {
	awk '$1 == "openers" { print $2 }' /sys/class/misc/rtp_mgr"$1"/status 2>/dev/null || echo 0
}
stop_services() {
	openers_before=$(openers 0)
	for svc in rtp-feeder rtp-rx; do
		if command -v systemctl >/dev/null 2>&1 &&
			systemctl is-active --quiet "$svc" 2>/dev/null; then
			systemctl stop "$svc" &&
				stopped_services="$stopped_services $svc"
		elif [ -x "/etc/init.d/$svc" ] &&
			"/etc/init.d/$svc" status >/dev/null 2>&1; then
			"/etc/init.d/$svc" stop >/dev/null 2>&1 &&
				stopped_services="$stopped_services $svc"
		fi
	done
	# The optional metrics timer (package rtp-app-metrics, systemd only) opens every channel
	# once a period: a run that starts between the services' stop and rmmod would make the
	# unload fail with EBUSY. Stop the timer and wait for a run in flight.
	if command -v systemctl >/dev/null 2>&1 &&
		systemctl is-active --quiet rtpmgr-metrics.timer 2>/dev/null; then
		systemctl stop rtpmgr-metrics.timer rtpmgr-metrics.service &&
			stopped_services="$stopped_services rtpmgr-metrics.timer"
	fi
	[ -z "$stopped_services" ] || echo "# stopped:$stopped_services"
}

restart_services() {
	for svc in $stopped_services; do
		if command -v systemctl >/dev/null 2>&1 &&
			systemctl cat "$svc" >/dev/null 2>&1; then
			systemctl start "$svc"
		else
			"/etc/init.d/$svc" start >/dev/null 2>&1
		fi || echo "# restarting $svc failed"
	done
	# The init scripts return once the daemons are started, not once they have opened their
	# channel. Leave the appliance as it was found: wait (bounded) until channel 0 has its
	# openers back, so that whatever runs next meets running pipelines.
	[ -n "$stopped_services" ] || return 0
	tries=0
	while [ "$(openers 0)" -lt "${openers_before:-0}" ] && [ "$tries" -lt 100 ]; do
		tries=$((tries + 1))
		sleep 0.1
	done
	[ "$(openers 0)" -ge "${openers_before:-0}" ] ||
		echo "# services restarted, but channel 0 has $(openers 0) openers, not $openers_before, after 10 s"
}

was_loaded=0
if loaded; then
	was_loaded=1
	stop_services
	# A stopped service may take a moment to close its files.
	tries=0
	until rmmod rtp_mgr 2>/dev/null || [ "$tries" -ge 10 ]; do
		tries=$((tries + 1))
		sleep 1
	done
	if loaded; then
		echo "Bail out! rtp_mgr is in use; stop its users first"
		restart_services
		echo "0 passed, 1 failed"
		exit 1
	fi
fi
mark_log
start_mark=$log_mark

# 1, 2. The module loads with its defaults (insmod) or its modprobe.d options,
#    creates one device per channel and says so once.
mark_log
ch=0
if load; then
	ch=$(param channels)
	if [ -z "$KO" ] || [ "$ch" = 4 ]; then
		ok "load_defaults"
	else
		not_ok "load_defaults"
	fi
else
	not_ok "load_defaults"
fi
if [ "$ch" -gt 0 ] && [ -c /dev/rtp_mgr0 ] &&
	[ -c "/dev/rtp_mgr$((ch - 1))" ] && [ ! -e "/dev/rtp_mgr$ch" ] &&
	[ "$(new_log | grep -c "rtp_mgr: $ch channels")" = 1 ] &&
	grep -q '^pushed_packets 0$' /sys/class/misc/rtp_mgr0/stats &&
	grep -q '^state stopped$' /sys/class/misc/rtp_mgr0/status &&
	rmmod rtp_mgr && [ ! -e /dev/rtp_mgr0 ]; then
	ok "devices_and_sysfs"
else
	not_ok "devices_and_sysfs"
	loaded && rmmod rtp_mgr
fi

# 3. Many cycles with varying valid parameters; devices appear and vanish.
i=0
bad=0
while [ "$i" -lt "$ITERATIONS" ]; do
	ch=$((i % 8 + 1))
	order=$((i % 10 + 1))
	case $((i % 4)) in
	0) pay=64 ;;
	1) pay=2048 ;;
	2) pay=9000 ;;
	*) pay=16384 ;;
	esac
	drop=$((i % 2))
	if ! load channels=$ch ring_order=$order slot_payload=$pay \
		drop_policy=$drop; then
		echo "# iteration $i: load channels=$ch ring_order=$order slot_payload=$pay failed"
		bad=$((bad + 1))
		break
	fi
	last=$((ch - 1))
	if [ ! -c "/dev/rtp_mgr$last" ] || [ -e "/dev/rtp_mgr$ch" ] ||
		[ "$(param ring_order)" != "$order" ] ||
		! grep -q "^slot_payload $pay\$" \
			"/sys/class/misc/rtp_mgr$last/config"; then
		echo "# iteration $i: devices or parameters wrong"
		bad=$((bad + 1))
	fi
	if ! rmmod rtp_mgr || [ -e /dev/rtp_mgr0 ]; then
		echo "# iteration $i: rmmod failed"
		bad=$((bad + 1))
		break
	fi
	i=$((i + 1))
done
check "load_unload_${ITERATIONS}x" test "$bad" = 0 -a "$i" = "$ITERATIONS"

# 4. Out-of-range parameters fail the load and dmesg names the parameter.
bad=0
for arg in ring_order=0 ring_order=16 ring_order=-1 slot_payload=63 \
	slot_payload=16385 channels=0 channels=33 drop_policy=2; do
	name=${arg%%=*}
	mark_log
	if load "$arg" 2>/dev/null; then
		echo "# $arg: loaded"
		bad=$((bad + 1))
		rmmod rtp_mgr
		continue
	fi
	if loaded; then
		echo "# $arg: module left loaded"
		bad=$((bad + 1))
	fi
	if ! new_log | grep -q "rtp_mgr.*$name"; then
		echo "# $arg: no kernel log line naming $name"
		bad=$((bad + 1))
	fi
done
check "bad_parameters_refused" [ "$bad" = 0 ]

# 5. The range message is precise.
mark_log
load ring_order=16 2>/dev/null && rmmod rtp_mgr
check "range_in_message" \
	sh -c "dmesg | tail -n +$((log_mark + 1)) | grep -q 'invalid ring_order=16: allowed range is 1..15'"

# 6. rmmod is refused while a channel is open, and works after close.
bad=0
if load; then
	exec 3<>/dev/rtp_mgr1
	if rmmod rtp_mgr 2>/dev/null; then
		echo "# rmmod succeeded while /dev/rtp_mgr1 was open"
		bad=$((bad + 1))
	fi
	loaded || bad=$((bad + 1))
	exec 3<&-
	rmmod rtp_mgr || bad=$((bad + 1))
else
	bad=1
fi
check "rmmod_refused_while_open" [ "$bad" = 0 ]

# 7. Nothing is left behind.
check "unloaded_clean" sh -c '! grep -q "^rtp_mgr " /proc/modules && [ ! -e /dev/rtp_mgr0 ] && [ ! -d /sys/module/rtp_mgr ]'

# 7b. The field diagnostics notice the missing module: a FAIL line naming it and a failing exit.
if command -v rtp_app >/dev/null 2>&1; then
	diag_out=$(rtp_app diag 2>&1)
	diag_rc=$?
	echo "$diag_out" | grep '^FAIL' | sed 's/^/# /'
	check "diag_fails_without_module" sh -c "[ $diag_rc != 0 ] && echo \"\$1\" | grep -q '^FAIL module'" _ "$diag_out"
else
	ok "diag_fails_without_module # SKIP rtp_app not installed"
fi

# 8. No warning, bug or oops in the kernel log during the whole run.
log_mark=$start_mark
if new_log | grep -E 'WARNING:|BUG:|Oops|Call trace|general protection'; then
	not_ok "no_kernel_warnings"
else
	ok "no_kernel_warnings"
fi

if [ "$was_loaded" = 1 ]; then
	load || echo "# reloading rtp_mgr failed"
	restart_services
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
