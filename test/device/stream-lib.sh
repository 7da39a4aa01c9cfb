# shellcheck shell=sh
# stream-lib.sh - shared by demo-stream and stream-check (sourced): send RTP through the running
# appliance and account for every packet.
#
# Path: rtp_app --mode tx (its own ring channel) -> UDP 127.0.0.1:5004 -> the rtp-feeder service's
# [receive] socket, attached to ring channel 0 (the kernel receives) -> rtp-feeder -> appsrc !
# <feeder.toml pipeline> ! sink.
# Counts come from the sender's final stats, the channel's sysfs stats and the feeder's log.

RX_CHANNEL=${RTPMGR_RX_CHANNEL:-0}
TX_CHANNEL=${RTPMGR_TX_CHANNEL:-1}
FEEDER_LOG=${RTPMGR_FEEDER_LOG:-/var/log/rtpmgr/rtp-feeder.log}
# The run's files: in /tmp/rtpmgr, where the AppArmor profile lets the confined rtp_app write its
# redirected output (a file elsewhere would be denied to it).
STREAM_TMP=/tmp/rtpmgr
mkdir -p "$STREAM_TMP"

# ring_stat NAME [CHANNEL]: one counter of /sys/class/misc/rtp_mgrN/stats.
ring_stat() {
	awk -v k="$1" '$1 == k { print $2 }' "/sys/class/misc/rtp_mgr${2:-$RX_CHANNEL}/stats" 2>/dev/null
}

# ring_line: the per-second RING line, from one read of the stats file (separate reads of pushed
# and popped could show more popped than pushed).
ring_line() {
	awk -v p0="$ring0" -v q0="$pop0" -v ch="$RX_CHANNEL" '{ v[$1] = $2 }
		END { printf "RING%s: pushed %d popped %d drops %d overruns %d lost %d", ch, v["pushed_packets"] - p0,
			v["popped_packets"] - q0, v["drops"], v["overruns"], v["rtp_lost"] }' "/sys/class/misc/rtp_mgr$RX_CHANNEL/stats"
}

# feeder_sink: buffers the running feeder's pipeline sink has received: its last stats line,
# or 0 if it has printed none since it started (its start line is "rx: ... -> appsrc ...").
feeder_sink() {
	awk '/ rx: .* -> appsrc / { n = 0 } match($0, /[|] sink [0-9]+/) { n = substr($0, RSTART + 7, RLENGTH - 7) }
		END { print n + 0 }' "$FEEDER_LOG" 2>/dev/null || echo 0
}

# stream_run SECONDS RATE PAYLOAD SHOW: send for SECONDS, print a ring/feeder line every second if
# SHOW is 1. Sets sent, ring, gst, dropped (deltas over the run).
stream_run() {
	secs=$1 pps=$2 bytes=$3 show=$4
	ring0=$(ring_stat pushed_packets)
	pop0=$(ring_stat popped_packets)
	drop0=$(($(ring_stat drops) + $(ring_stat overruns)))
	gst0=$(feeder_sink)
	# The sink count is the feeder's own, from its log: a feeder that restarts mid-run starts
	# again from 0, and the deltas would be meaningless.
	feeder_pid0=$(pidof rtp-feeder)
	out=$STREAM_TMP/stream-tx.$$
	rtp_app --mode tx --dst 127.0.0.1 --port 5004 --rate "$pps" --payload "$bytes" \
		--channel "$TX_CHANNEL" -t "$secs" --interval 1 >"$out" 2>&1 &
	txpid=$!
	i=0
	while kill -0 "$txpid" 2>/dev/null; do
		sleep 1
		i=$((i + 1))
		if [ "$show" = 1 ]; then
			tail -n 1 "$out"
			echo "$(ring_line) | FEEDER: sink $(($(feeder_sink) - gst0))"
		fi
		[ "$i" -gt $((secs + 30)) ] && { echo "stream: sender still running after $i s, stopping it"; kill "$txpid"; }
	done
	wait "$txpid"
	txrc=$?
	# Let the jitterbuffer (latency 50 ms) and the feeder's stats interval (1 s) catch up.
	n=0
	while [ "$n" -lt 10 ]; do
		sleep 1
		n=$((n + 1))
		[ "$(($(feeder_sink) - gst0))" -ge "$(($(ring_stat pushed_packets) - ring0))" ] && [ "$n" -ge 2 ] && break
	done
	[ "$show" = 1 ] || tail -n 3 "$out"
	# The sender's final line: "TX: <packets> pkts (...)".
	sent=$(grep '^TX:' "$out" | tail -n 1 | awk '{ gsub(",", "", $2); print $2 }')
	sent=${sent:-0}
	ring=$(($(ring_stat pushed_packets) - ring0))
	gst=$(($(feeder_sink) - gst0))
	dropped=$(($(ring_stat drops) + $(ring_stat overruns) - drop0))
	rm -f "$out"
	[ "$txrc" = 0 ] || echo "stream: rtp_app --mode tx exited $txrc"
	if [ "$(pidof rtp-feeder)" != "$feeder_pid0" ]; then
		echo "stream: rtp-feeder restarted during the run (pid ${feeder_pid0:-none} -> $(pidof rtp-feeder)); see $FEEDER_LOG"
		return 1
	fi
	return "$txrc"
}

# stream_summary: print the summary marker; PASS if every packet sent reached the ring and GStreamer.
stream_summary() {
	verdict=PASS
	[ "$sent" -gt 0 ] && [ "$ring" = "$sent" ] && [ "$gst" = "$sent" ] && [ "$dropped" = 0 ] || verdict=FAIL
	echo "@@RTPMGR summary sent=$sent ring=$ring gst=$gst dropped=$dropped verdict=$verdict"
	[ "$verdict" = PASS ]
}

# top_snapshot_start DELAY FILE [ARGS...]: after DELAY seconds, `rtp_app top --once ARGS` (it reads
# every channel twice, 1 s apart) in the background into FILE; top_snapshot_wait waits for it.
top_snapshot_start() {
	top_delay=$1 top_file=$2
	shift 2
	(
		sleep "$top_delay"
		rtp_app top --once "$@"
	) >"$top_file" 2>&1 &
	top_pid=$!
}
top_snapshot_wait() { wait "$top_pid"; }

# top_field CHANNEL KEY FILE: KEY's value (a number, string or null) in CHANNEL's object of a
# `rtp_app top --once --json` record. Each channel object starts with "attach", its first key.
top_field() {
	awk -v ch="$1" -v key="$2" '{
		n = split($0, part, /[{]"attach":/)
		for (i = 2; i <= n; i++) {
			part[i] = "\"attach\":" part[i]
			if (index(part[i], "\"channel\":" ch ",") == 0) continue
			if (match(part[i], "\"" key "\":(\"[^\"]*\"|[-0-9.e+]+|null)"))
				print substr(part[i], RSTART + length(key) + 3, RLENGTH - length(key) - 3)
		}
	}' "$3"
}
