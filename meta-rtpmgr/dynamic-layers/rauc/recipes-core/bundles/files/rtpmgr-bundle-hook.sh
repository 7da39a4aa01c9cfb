#!/bin/sh
# RAUC bundle hook of rtpmgr bundles (manifest [hooks] hooks=install-check).
#
# install-check runs after RAUC verified the signature and mounted the bundle, and before it
# touches any slot. In a verity bundle the signature covers the payload only through dm-verity's
# hash tree: a modified block is found when it is READ, which for the images is during the copy,
# after RAUC has already started writing the inactive slot. Reading every file of the bundle here
# once, through the same dm-verity device, moves that check in front of the first write: a tampered
# bundle is rejected with the inactive slot untouched. The read also warms the page cache, so the
# copy that follows costs little extra.
#
# An install-check hook replaces RAUC's own compatible check, so it is repeated here.
# Exit codes of 10 and above make RAUC report "Bundle rejected: <last line on stderr>".
# ONE source: meta-rtpmgr's rtpmgr-bundle recipe and test/ota/build-image.sh ship this file.

case "$1" in
install-check)
	if [ "$RAUC_MF_COMPATIBLE" != "$RAUC_SYSTEM_COMPATIBLE" ]; then
		echo "bundle is for '$RAUC_MF_COMPATIBLE', this system is '$RAUC_SYSTEM_COMPATIBLE'" >&2
		exit 10
	fi
	bundle_dir=$(dirname "$0")
	for f in "$bundle_dir"/*; do
		[ -f "$f" ] || continue
		if ! cat "$f" > /dev/null 2>&1; then
			echo "bundle payload is corrupted: $(basename "$f") fails verification" >&2
			exit 10
		fi
	done
	;;
esac
exit 0
