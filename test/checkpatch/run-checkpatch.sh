#!/usr/bin/env bash
# run-checkpatch.sh - the kernel module's sources through the kernel's own style checker:
# `checkpatch.pl --strict --no-tree -f` over kernel/*.c kernel/*.h include/*.h (`make test` step checkpatch).
#
# Fails on any ERROR, WARNING or CHECK that test/checkpatch/exceptions does not excuse for that file,
# and on an exception that matches nothing (a stale excuse). checkpatch.pl comes from Debian's
# linux-source-6.1 (scripts/setup-host.sh installs it): the unpacked tree of the sanitizer kernel when
# it exists, else the three files checkpatch needs, extracted once to $RTPMGR_CHECKPATCH_CACHE.
#
# Not checked: test/device/kernel/rtp_mgr_selftest.c is a user-space program (stdint types, libc),
# which kernel style rules (u32, ARRAY_SIZE) do not apply to.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
EXCEPTIONS=$REPO/test/checkpatch/exceptions
TARBALL=/usr/src/linux-source-6.1.tar.xz
KERNEL_CACHE=${RTPMGR_KERNEL_CACHE:-/var/cache/rtpmgr/debug-kernel}

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
[ -n "$srcver" ] && [ -f "$TARBALL" ] || { echo "linux-source-6.1 is not installed (run scripts/setup-host.sh)"; exit 1; }
checkpatch=$KERNEL_CACHE/source/$srcver/linux-source-6.1/scripts/checkpatch.pl
if [ ! -f "$checkpatch" ]; then
	dir=${RTPMGR_CHECKPATCH_CACHE:-/var/cache/rtpmgr/checkpatch}/$srcver
	checkpatch=$dir/linux-source-6.1/scripts/checkpatch.pl
	if [ ! -f "$checkpatch" ]; then
		mkdir -p "$dir"
		tar -xJf "$TARBALL" -C "$dir" linux-source-6.1/scripts/checkpatch.pl \
			linux-source-6.1/scripts/spelling.txt linux-source-6.1/scripts/const_structs.checkpatch
	fi
fi
echo "checkpatch.pl of linux-source-6.1 $srcver: $checkpatch"

cd "$REPO"
files=(kernel/*.c kernel/*.h include/*.h)
[ -e "${files[0]}" ] || { echo "no kernel sources found"; exit 1; }

# FILE -> its excused types, comma-separated; and each exception's line for the stale check.
declare -A ignore=()
declare -a excuses=()
while read -r file type rest; do
	[ -z "$file" ] || [[ $file == "#"* ]] && continue
	[[ $rest == "-- "* ]] || { echo "$EXCEPTIONS: '$file $type' has no '-- why'"; exit 1; }
	[ -f "$file" ] || { echo "$EXCEPTIONS: $file does not exist (stale exception)"; exit 1; }
	ignore[$file]=${ignore[$file]:+${ignore[$file]},}$type
	excuses+=("$file $type")
done <"$EXCEPTIONS"

# checkpatch run inside a git work tree writes a .checkpatch-camelcase.git.* cache file into the current
# directory: run it from a scratch directory, with absolute paths, and print paths relative to the repo.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp_run() { # FILE [checkpatch args...]
	local f=$1
	shift
	(cd "$scratch" && perl "$checkpatch" --strict --no-tree --show-types --terse --no-summary --color=never \
		"$@" -f "$REPO/$f" || true) | sed "s|^$REPO/||"
}

rc=0
for f in "${files[@]}"; do
	found=$(cp_run "$f" ${ignore[$f]:+--ignore "${ignore[$f]}"})
	if [ -n "$found" ]; then
		echo "$found"
		rc=1
	else
		echo "clean: $f${ignore[$f]:+ (excused: ${ignore[$f]})}"
	fi
done
for e in "${excuses[@]}"; do
	read -r f type <<<"$e"
	if ! cp_run "$f" | grep -q ":$type:"; then
		echo "stale exception in test/checkpatch/exceptions: $f has no $type finding any more: remove the line"
		rc=1
	fi
done
if [ "$rc" = 0 ]; then
	echo "checkpatch --strict: ${#files[@]} files clean (${#excuses[@]} justified exceptions)"
else
	echo "checkpatch --strict: findings above (fix them, or justify one in test/checkpatch/exceptions)"
fi
exit "$rc"
