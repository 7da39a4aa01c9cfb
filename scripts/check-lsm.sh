#!/usr/bin/env bash
# check-lsm.sh - the layer's confinement policies are valid, checked on the host without a target:
#
#   1. the AppArmor profiles of rtp_app and rtp-feeder parse (apparmor_parser -Q -T: parse and
#      compile only, nothing is loaded into the host's kernel), each attaches to its binary, grants
#      no blanket path ("/**", home directories) and no capability outside its allow-list below
#      (each one's reason is in docs/security.md, "Capabilities"); rtp_app's AF_XDP rules are in the
#      snippet rtp_app-xdp (installed only with an rtp_app built with XDP): the base profile has no
#      XDP capability, and the profile with the snippet included parses and grants them;
#   2. the SELinux policy module rtpmgr (.te/.fc/.if) compiles into rtpmgr.pp with Debian's
#      refpolicy development files (selinux-policy-dev), i.e. checkmodule and semodule_package.
#
# `make test` runs it as step lsm-policies (test/run-tests.sh). Exit status 0 only if all pass.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
# Each policy lives in the dynamic layer of the collection that ships its tools: meta-security
# (apparmor), meta-selinux (refpolicy).
APPARMOR=$TOP/meta-rtpmgr/dynamic-layers/security/recipes-security/rtpmgr-apparmor/files
SELINUX=$TOP/meta-rtpmgr/dynamic-layers/selinux/recipes-security/rtpmgr-selinux/files
SELINUX_DEVEL=/usr/share/selinux/devel/Makefile

# The capabilities a profile may grant. AppArmor only takes rights away: the services run as user
# rtpmgr without any capability, so these matter only for root running the tools by hand. A new one
# needs its reason in docs/security.md first.
declare -A allowed_caps=(
	[rtp_app]="net_admin sys_ptrace dac_read_search"
	[rtp-feeder]=""
)
# What rtp_app --xdp needs on top (the rtp_app-xdp snippet): the XDP socket, pinned UMEM, the BPF
# program. Never in the base profile: the layer's rtp_app is built without XDP.
xdp_caps="net_raw ipc_lock bpf perfmon"

failures=0
ok() { printf '    ok: %s\n' "$*"; }
bad() { printf '    FAIL: %s\n' "$*"; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '==> AppArmor: apparmor_parser -Q -T over %s\n' "${APPARMOR#"$TOP"/}"
command -v apparmor_parser >/dev/null || { echo "apparmor_parser not found (run scripts/setup-host.sh)"; exit 1; }
for binary in rtp_app rtp-feeder; do
	profile=$APPARMOR/usr.bin.$binary
	if [ ! -f "$profile" ]; then
		bad "no profile for $binary ($profile)"
		continue
	fi
	# -K: no cache. Its note about the host kernel's missing AppArmor interface is not an error.
	if ! apparmor_parser -Q -T -K "$profile" >/dev/null 2>"$tmp/err"; then
		bad "$binary: apparmor_parser rejects $profile: $(grep -v '^Cache read/write' "$tmp/err")"
		continue
	fi
	# Granted capabilities: "capability a b," rules ("deny capability" takes away, "capability,"
	# alone would grant them all).
	caps=$(sed -n 's/^[[:space:]]*\(audit[[:space:]]\+\)\?capability\([^,]*\),.*/\2/p' "$profile" | tr -s ' \t' '\n' | sed '/^$/d')
	extra=""
	for cap in $caps; do
		[[ " ${allowed_caps[$binary]} " == *" $cap "* ]] || extra="$extra $cap"
	done
	if ! grep -Eq "^profile $binary /usr/bin/$binary( flags=\([a-z_,]*\))? \{" "$profile"; then
		bad "$binary: the profile does not attach to /usr/bin/$binary"
	elif grep -Eq '^[[:space:]]*(audit[[:space:]]+)?capability[[:space:]]*,' "$profile"; then
		bad "$binary: grants every capability (a bare 'capability,' rule)"
	elif [ -n "$extra" ]; then
		bad "$binary: grants capabilities outside its allow-list (${allowed_caps[$binary]:-none}):$extra"
	elif grep -Eqn '^[[:space:]]*(owner[[:space:]]+)?(/\*\*|@\{HOME\}|/home/)' "$profile"; then
		bad "$binary: grants a blanket path: $(grep -En '^[[:space:]]*(owner[[:space:]]+)?(/\*\*|@\{HOME\}|/home/)' "$profile")"
	else
		ok "$binary: profile parses, attaches to /usr/bin/$binary, capabilities: $(tr '\n' ' ' <<<"${caps:-none}")(allow-list: ${allowed_caps[$binary]:-none}), no blanket path"
	fi
done
# The XDP snippet: included by the rtp_app profile "if exists" from <rtpmgr/rtp_app-xdp>. With it in
# the include path the profile parses; a broken snippet must make it fail (the include is resolved).
snippet=$APPARMOR/rtp_app-xdp
granted() { sed -n 's/^[[:space:]]*\(audit[[:space:]]\+\)\?capability\([^,]*\),.*/\2/p' "$1" | tr -s ' \t' '\n' | sed '/^$/d' | sort | tr '\n' ' '; }
if [ ! -f "$snippet" ]; then
	bad "no $snippet"
elif ! grep -q '^[[:space:]]*include if exists <rtpmgr/rtp_app-xdp>' "$APPARMOR/usr.bin.rtp_app"; then
	bad "usr.bin.rtp_app does not include <rtpmgr/rtp_app-xdp> if it exists"
elif grep -Eq '^[[:space:]]*network[[:space:]]+xdp' "$APPARMOR/usr.bin.rtp_app"; then
	bad "usr.bin.rtp_app grants AF_XDP itself: that belongs in rtp_app-xdp"
elif [ "$(granted "$snippet")" != "$(tr ' ' '\n' <<<"$xdp_caps" | sort | tr '\n' ' ')" ]; then
	bad "rtp_app-xdp grants '$(granted "$snippet")', expected exactly: $xdp_caps"
else
	mkdir -p "$tmp/inc/rtpmgr"
	cp "$snippet" "$tmp/inc/rtpmgr/rtp_app-xdp"
	if ! apparmor_parser -Q -T -K -I "$tmp/inc" "$APPARMOR/usr.bin.rtp_app" >/dev/null 2>"$tmp/err"; then
		bad "usr.bin.rtp_app with rtp_app-xdp: $(grep -v '^Cache read/write' "$tmp/err")"
	else
		echo '  capability bogus_cap,' >"$tmp/inc/rtpmgr/rtp_app-xdp"
		if apparmor_parser -Q -T -K -I "$tmp/inc" "$APPARMOR/usr.bin.rtp_app" >/dev/null 2>&1; then
			bad "a broken rtp_app-xdp in the include path still parses: the snippet is not included"
		else
			ok "rtp_app-xdp parses included in usr.bin.rtp_app (a broken one fails), grants $xdp_caps; the base profile none of them"
		fi
	fi
fi

# The parser must refuse a broken profile, or the check above proves nothing.
sed 's|^\( *\)/dev/rtp_mgr\[0-9\]\* [a-z]*,|\1/dev/rtp_mgr[0-9]* rwq,|' "$APPARMOR/usr.bin.rtp_app" >"$tmp/broken"
if apparmor_parser -Q -T -K "$tmp/broken" >/dev/null 2>&1; then
	bad "apparmor_parser accepted a profile with an invalid permission: the check is not checking"
else
	ok "apparmor_parser rejects a profile with an invalid permission (rwq)"
fi

printf '==> SELinux: rtpmgr.pp from %s with %s\n' "${SELINUX#"$TOP"/}" "$SELINUX_DEVEL"
[ -f "$SELINUX_DEVEL" ] || { echo "$SELINUX_DEVEL not found (selinux-policy-dev: run scripts/setup-host.sh)"; exit 1; }
mkdir "$tmp/selinux"
cp "$SELINUX"/rtpmgr.te "$SELINUX"/rtpmgr.fc "$SELINUX"/rtpmgr.if "$tmp/selinux/"
if make -s -C "$tmp/selinux" -f "$SELINUX_DEVEL" rtpmgr.pp >"$tmp/selinux.log" 2>&1 &&
	[ -s "$tmp/selinux/rtpmgr.pp" ]; then
	# The package holds the file contexts: the device nodes and both binaries are labelled.
	for ctx in rtpmgr_device_t rtpmgr_exec_t rtpmgr_feeder_exec_t rtpmgr_runtime_t rtpmgr_metrics_t; do
		grep -aq "$ctx" "$tmp/selinux/rtpmgr.pp" || bad "rtpmgr.pp has no file context for $ctx"
	done
	ok "rtpmgr.pp compiled ($(stat -c %s "$tmp/selinux/rtpmgr.pp") bytes): types rtpmgr_t, rtpmgr_feeder_t, rtpmgr_device_t"
else
	cat "$tmp/selinux.log"
	bad "the SELinux module rtpmgr does not compile"
fi

[ "$failures" = 0 ] || { echo "lsm-policies: $failures failure(s)"; exit 1; }
echo "lsm-policies: AppArmor profiles and SELinux module valid"
