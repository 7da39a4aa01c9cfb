#!/usr/bin/env bash
# fetch-kernel-headers.sh - Debian's packaged kernel headers of another release, unpacked (never
# installed) into /var/cache/rtpmgr/kernel-headers/<version>/, for the module-range step of `make test`.
#
# Usage: scripts/fetch-kernel-headers.sh SERIES ARCH
#   SERIES  6.12 (bookworm-backports) or 5.10 (bullseye + bullseye-security)
#   ARCH    amd64 or arm64
# Prints the headers directory (KDIR) on stdout. On failure it prints why on stderr and exits 2 when
# the packages cannot be obtained (no network, suite gone), 1 for anything else.
#
# apt runs with its own sources list and state under the cache, so the machine's apt configuration
# and package database stay untouched. The kbuild tools (fixdep, modpost) are always the amd64
# package: they run on this host, whatever the target.
set -euo pipefail

series=${1:?usage: fetch-kernel-headers.sh SERIES ARCH}
arch=${2:?usage: fetch-kernel-headers.sh SERIES ARCH}
CACHE=${RTPMGR_CACHE:-/var/cache/rtpmgr}/kernel-headers
MIRROR=${RTPMGR_DEBIAN_MIRROR:-http://deb.debian.org}

die() { printf 'fetch-kernel-headers: %s\n' "$*" >&2; exit "${2:-1}"; }

case "$series" in
6.12) suites="$MIRROR/debian bookworm-backports" ;;
5.10) suites="$MIRROR/debian bullseye
$MIRROR/debian-security bullseye-security" ;;
*) die "unknown series '$series' (known: 6.12, 5.10)" ;;
esac
case "$arch" in amd64 | arm64) ;; *) die "unknown arch '$arch' (known: amd64, arm64)" ;; esac

# One private apt root per series; its package lists are refreshed at most once a day.
aptroot=$CACHE/apt-$series
mkdir -p "$aptroot/lists/partial" "$aptroot/archives/partial" "$aptroot/parts" "$aptroot/prefs"
# An empty package database: what this machine has installed (its own 6.1 headers) must not win.
[ -f "$aptroot/status" ] || : >"$aptroot/status"
sources=$aptroot/sources.list
: >"$sources.new"
while read -r uri suite; do
	echo "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >>"$sources.new"
done <<<"$suites"
mv "$sources.new" "$sources"
apt_opts=(-o "Dir::Etc::SourceList=$sources" -o "Dir::Etc::SourceParts=$aptroot/parts"
	-o "Dir::Etc::PreferencesParts=$aptroot/prefs" -o "Dir::State::Lists=$aptroot/lists" -o "Dir::State::Status=$aptroot/status"
	-o "Dir::Cache=$aptroot" -o "Dir::Cache::Archives=$aptroot/archives"
	-o "APT::Architecture=amd64" -o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64"
	-o "APT::Sandbox::User=root" -o "Acquire::Retries=2" -o "Debug::NoLocking=1")

exec 9>"$aptroot/lock"
flock 9
if [ -z "$(find "$aptroot/lists" -maxdepth 1 -name '*Packages*' -mtime -1 -print -quit)" ]; then
	apt-get "${apt_opts[@]}" -qq update >&2 ||
		die "apt-get update of '$suites' failed (no network to $MIRROR?)" 2
fi

# The ABIs of the series, newest first: the versioned headers package each version of the
# linux-headers-ARCH metapackage points at. A mirror may list a version whose files are gone (a
# security update superseded on the pool): then the next older one is tried.
mapfile -t meta_versions < <(apt-cache "${apt_opts[@]}" madison "linux-headers-$arch:$arch" 2>/dev/null |
	awk -F' *[|] *' -v s="$series" 'index($2, s ".") == 1 { print $2 }')
[ "${#meta_versions[@]}" -gt 0 ] || die "no linux-headers-$arch $series.* in '$suites'" 2
why=
for version in "${meta_versions[@]}"; do
	abi_pkg=$(apt-cache "${apt_opts[@]}" show "linux-headers-$arch:$arch=$version" |
		sed -nE "s/^Depends: .*(linux-headers-${series}[^ :,]*-${arch}).*$/\1/p" | head -n1)
	[ -n "$abi_pkg" ] || { why="linux-headers-$arch $version names no versioned headers package"; continue; }
	abi=${abi_pkg#linux-headers-}
	abi=${abi%-"$arch"}
	dest=$CACHE/$version/$arch
	kdir=$dest/usr/src/linux-headers-$abi-$arch
	if [ -f "$dest/.complete" ]; then
		echo "$kdir"
		exit 0
	fi
	# The headers package, its -common tree and the kbuild package of the same source version.
	deps=$(apt-cache "${apt_opts[@]}" depends "$abi_pkg:$arch=$version" | sed -nE 's/^ *Depends: <?(linux-[^ :>]*).*$/\1/p')
	common=$(grep -m1 -- '-common' <<<"$deps") || { why="$abi_pkg $version names no -common package"; continue; }
	kbuild=$(grep -m1 '^linux-kbuild-' <<<"$deps") || { why="$abi_pkg $version names no linux-kbuild package"; continue; }
	if (cd "$aptroot/archives" && apt-get "${apt_opts[@]}" -q download \
		"$abi_pkg:$arch=$version" "$common=$version" "$kbuild:amd64=$version") >"$aptroot/download.log" 2>&1; then
		why=
		break
	fi
	why="apt-get download of $abi_pkg $version failed: $(grep -m1 '^E: ' "$aptroot/download.log" || tail -n1 "$aptroot/download.log")"
	echo "fetch-kernel-headers: $why; trying an older version" >&2
done
[ -z "$why" ] || die "$why" 2

rm -rf "$dest"
mkdir -p "$dest"
for pkg in "$abi_pkg" "$common" "$kbuild"; do
	debs=("$aptroot/archives/${pkg}_${version//:/%3a}_"*.deb)
	dpkg -x "${debs[0]}" "$dest"
done
# The arch tree includes the -common tree by absolute path: point it into the cache.
sed -i "s|/usr/src/linux-headers-$abi-common|$dest/usr/src/linux-headers-$abi-common|g" "$kdir/Makefile"
[ -e "$kdir/scripts/basic/fixdep" ] || die "$kdir/scripts/basic/fixdep missing after unpacking $kbuild"
touch "$dest/.complete"
echo "$kdir"
