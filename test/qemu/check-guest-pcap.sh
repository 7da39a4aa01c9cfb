#!/bin/bash
# check-guest-pcap.sh CONSOLE_LOG - the host half of the guest's "capture" suite
# (test/device/capture-check): the pcap that `rtp_app capture` wrote in the guest, printed on the
# console base64-encoded, must decode with tshark as the RTP stream the guest sent: exactly the
# announced number of packets, all of the announced SSRC, consecutive sequence numbers in order.
#
# The console log is the only thing the QEMU harness takes out of the guest. Markers (each line
# of the file prefixed so printk output in between cannot be mistaken for data):
#   RTPMGR-PCAP-BEGIN capture <packets> <ssrc> <sha256>
#   RTPMGR-PCAP <base64 line>...
#   RTPMGR-PCAP-END
# or "RTPMGR-PCAP-SKIP capture: <why>" when the guest could not hand the file over.
# Prints "SKIP capture-pcap: <why>" (counted by test/run-tests.sh) when there is nothing to check.
set -euo pipefail
console=${1:?usage: check-guest-pcap.sh CONSOLE_LOG}
name=capture-pcap
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The serial console ends lines with CR.
tr -d '\r' <"$console" >"$tmp/console"
if grep -q '^RTPMGR-PCAP-SKIP capture' "$tmp/console"; then
	echo "SKIP $name: $(sed -n 's/^RTPMGR-PCAP-SKIP capture: //p' "$tmp/console" | head -n 1)"
	exit 0
fi
begin=$(grep '^RTPMGR-PCAP-BEGIN capture ' "$tmp/console" | tail -n 1 || true)
if [ -z "$begin" ]; then
	if grep -q '^=== suite capture' "$tmp/console"; then
		echo "FAIL $name: the capture suite ran but printed no pcap (see its lines in $console)"
		exit 1
	fi
	echo "SKIP $name: the guest's capture suite did not run (rtpmgr.suites without capture?)"
	exit 0
fi
read -r _ _ packets ssrc sum <<<"$begin"
# The last BEGIN..END block, its data lines only.
awk '/^RTPMGR-PCAP-BEGIN capture / { n = 0; delete l; on = 1; next }
	/^RTPMGR-PCAP-END/ { on = 0; next }
	on && /^RTPMGR-PCAP [A-Za-z0-9+\/=]+$/ { l[n++] = substr($0, 13) }
	END { for (i = 0; i < n; i++) print l[i] }' "$tmp/console" >"$tmp/pcap.b64"
base64 -d "$tmp/pcap.b64" >"$tmp/guest.pcap" || { echo "FAIL $name: the base64 block does not decode"; exit 1; }
got=$(sha256sum "$tmp/guest.pcap" | cut -d' ' -f1)
if [ "$got" != "$sum" ]; then
	echo "FAIL $name: the decoded file's sha256 $got is not the guest's $sum (console lines lost or mixed with kernel output?)"
	exit 1
fi
command -v tshark >/dev/null || { echo "FAIL $name: tshark is not installed (scripts/setup-host.sh installs it)"; exit 1; }
tshark -r "$tmp/guest.pcap" -d udp.port==5004,rtp -T fields -e rtp.seq -e rtp.ssrc -e _ws.malformed \
	>"$tmp/fields" 2>"$tmp/tshark.err" || { echo "FAIL $name: tshark: $(cat "$tmp/tshark.err")"; exit 1; }
want_ssrc=$(printf '0x%08x' "$ssrc")
# Every frame RTP of the guest's SSRC, not malformed, sequence numbers consecutive (mod 2^16).
if ! verdict=$(awk -F'\t' -v want="$packets" -v ssrc="$want_ssrc" '
	$1 == "" { print "frame " NR " is not decoded as RTP"; bad = 1; exit }
	$2 != ssrc { print "frame " NR " has SSRC " $2 ", not " ssrc; bad = 1; exit }
	$3 != "" { print "frame " NR " is malformed"; bad = 1; exit }
	NR == 1 { first = $1 }
	NR > 1 && $1 != (prev + 1) % 65536 { print "frame " NR ": sequence " $1 " after " prev; bad = 1; exit }
	{ prev = $1 }
	END { if (bad) exit 1
		if (NR != want) { print NR " frames, the guest captured " want; exit 1 }
		print NR " RTP packets of SSRC " ssrc ", sequence " first " to " prev " in order" }' "$tmp/fields"); then
	echo "FAIL $name: $verdict"
	exit 1
fi
echo "PASS $name: tshark reads the guest's capture: $verdict"
