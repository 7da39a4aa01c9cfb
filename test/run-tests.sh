#!/usr/bin/env bash
# run-tests.sh - every test of rtpmgr, in order, each step named; `make test` runs it.
#
#   host-commands     every command the tests and scripts run is installed by setup-host.sh or base
#                     (scripts/check-commands.py, scripts/commands.txt)
#   host-cargo        cargo test --workspace on the host (shm ring backend, real GStreamer, tshark)
#   host-clippy       cargo clippy --workspace -D warnings, and cargo fmt --check (crates/rustfmt.toml)
#   miri              the ring library's tests under Miri (nightly): undefined behaviour in its unsafe code
#   tsan              the ring library's tests (two-thread producer/consumer included) under ThreadSanitizer
#   module-arm64      rtp_mgr built for Debian's arm64 6.1 kernel with W=1, zero warnings
#   module-amd64      rtp_mgr built for the host's amd64 kernel headers (second series), W=1, sparse
#   dkms              dkms add/build/install of rtp_mgr against Debian's amd64 headers, modinfo, remove --all
#   module-range      rtp_mgr against Debian's 6.12 (bookworm-backports) and 5.10 (bullseye) headers,
#                     amd64 and arm64, W=1 and sparse clean (scripts/fetch-kernel-headers.sh); and
#                     against prepared kernel trees for series no registry carries (6.6, Yocto
#                     scarthgap): /var/cache/rtpmgr/kernel-trees/SERIES/ARCH (made by
#                     scripts/prepare-kernel-tree.sh) or RTPMGR_KDIRS="6.6:arm64=DIR 6.6:amd64=DIR"
#   lsm-policies      the AppArmor profiles parse (apparmor_parser -Q -T) and the SELinux module compiles
#                     (selinux-policy-dev), scripts/check-lsm.sh
#   checkpatch        checkpatch.pl --strict over kernel/ and include/ (test/checkpatch/exceptions)
#   layer-checks      oelint-adv over the layer and kas files against kas's schema
#   image             the QEMU aarch64 test image (test/qemu/build-image.sh)
#   device-tests      the on-device suite in QEMU aarch64 (test/device/run-device-tests)
#   sanitizer-kernel  the whole on-device suite plus the fuzzer on the KASAN/lockdep/UBSAN/kmemleak kernel;
#                     any sanitizer report or WARN in the kernel log fails it (RTPMGR_FUZZ_SECONDS)
#   ota               A/B update scenarios with U-Boot + RAUC in QEMU (test/ota), if present
#
# Each step logs to build/logs/<step>.log; a failing step prints its log tail and the run stops with
# "FAILED step: <name>". RTPMGR_STEPS="a b" runs only the named steps. QEMU_APPEND adds guest kernel
# arguments (e.g. a bad module parameter, to see the failure named).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
LOGS=$BUILD/logs
# Heavy, input-keyed outputs shared by every clone on this machine (debug kernel, sanitizer builds).
TOOL_CACHE=${RTPMGR_CACHE:-/var/cache/rtpmgr}
mkdir -p "$LOGS" "$TOOL_CACHE"
steps=${RTPMGR_STEPS:-host-commands host-cargo host-clippy miri tsan module-arm64 module-amd64 dkms module-range lsm-policies checkpatch layer-checks image device-tests sanitizer-kernel ota}
declare -a summary=()
# Tests that cannot run say why, here (Rust tests through rtpmgr_testkit::skip) or as "SKIP name: why"
# lines in a step's log (device suites, scripts); the summary lists and counts them all.
export RTPMGR_SKIP_LOG=$LOGS/skipped-tests.txt
: >"$RTPMGR_SKIP_LOG"

# skipped_tests: every skip of this run, one line each.
skipped_tests() {
	cat "$RTPMGR_SKIP_LOG"
	local name
	for name in "${ran_steps[@]}"; do
		grep -hE '^[[:space:]|]*(SKIP|SKIPPED)[: ]' "$LOGS/$name.log" 2>/dev/null | sed -E "s/^[[:space:]|]*/[$name] /" || true
	done
}
declare -a ran_steps=()

print_summary() {
	local skips
	skips=$(skipped_tests | sort -u)
	printf '\n----- summary\n'
	printf '  %s\n' "${summary[@]}"
	if [ -n "$skips" ]; then
		printf '\n----- skipped tests: %s\n' "$(wc -l <<<"$skips")"
		printf '  %s\n' "$skips"
	else
		printf '\n----- skipped tests: 0\n'
	fi
}

run_step() { # NAME CMD...
	local name=$1 log=$LOGS/$1.log start rc
	shift
	case " $steps " in *" $name "*) ;; *) return 0 ;; esac
	printf '\n===== step %s: %s\n' "$name" "$*"
	ran_steps+=("$name")
	start=$(date +%s)
	set +e
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	local t=$(($(date +%s) - start))
	if [ "$rc" != 0 ]; then
		summary+=("FAIL  $name (${t}s)")
		print_summary
		printf '\nFAILED step: %s (exit %s, log: %s)\n' "$name" "$rc" "$log" >&2
		echo "steps: $((${#summary[@]} - 1)) passed, 1 failed"
		exit 1
	fi
	summary+=("ok    $name (${t}s)")
}

cargo_env() {
	export CARGO_TERM_COLOR=never
}

host_cargo() {
	cargo_env
	cargo test --manifest-path "$REPO/crates/Cargo.toml" --workspace --locked
}

host_clippy() {
	cargo_env
	cargo clippy --manifest-path "$REPO/crates/Cargo.toml" --workspace --all-targets --locked -- -D warnings &&
		cargo fmt --manifest-path "$REPO/crates/Cargo.toml" --all -- --check
}

# Miri interprets the ring library's unit and integration tests and stops at undefined behaviour in
# its unsafe code (aliasing, provenance, alignment, data races, uninitialised reads). Tests that need
# what Miri cannot emulate (file mappings, processes, ioctls) are ignored with that reason under
# cfg(miri); libtest lists them and each becomes a counted SKIP line. Doctests are skipped as a
# whole (the examples open rings). Isolation off: the tests read /proc and the clock.
# The Miri and TSan target dirs live outside the clone and are shared by every clone on this
# machine. Cargo gives a workspace crate the same artifact name in every clone and decides
# freshness from the source paths in its dep-info: after a build from another clone whose sources
# still exist (an older checkout), this clone's edits would look built and the old test binary
# would run. So the workspace's own crates are always rebuilt there; their dependencies (and
# TSan's instrumented std) stay cached.
# Two layouts: cargo's <profile>/.fingerprint/<crate>-<hash>/, and the build-dir layout of newer
# nightlies (<profile>/build/<crate>/<hash>/{fingerprint,out}), where the first pattern finds
# nothing and a stale test binary ran (seen with nightly 1.101).
forget_workspace_builds() { # TARGET_DIR
	find "$1" -type d -path '*/.fingerprint/*' \( -name 'rtpmgr-*' -o -name 'rtp_app-*' \
		-o -name 'rtp-*' -o -name 'gst-plugin-rtpmgr-*' \) -prune -exec rm -rf {} + 2>/dev/null || true
	find "$1" -type d -path '*/debug/build/*' \( -name 'rtpmgr' -o -name 'rtpmgr-*' -o -name 'rtp_app' \
		-o -name 'rtp-app' -o -name 'rtp-feeder' -o -name 'gst-plugin-rtpmgr' \) -prune -exec rm -rf {} + 2>/dev/null || true
}

miri_tests() {
	cargo_env
	forget_workspace_builds "$TOOL_CACHE/cargo-miri"
	local out rc
	out=$(mktemp)
	# Its build cache lives outside the clone (cargo keys it by toolchain and sources), so a fresh
	# clone on this machine does not rebuild Miri's instrumented dependencies.
	MIRIFLAGS="-Zmiri-disable-isolation ${MIRIFLAGS:-}" CARGO_TARGET_DIR=$TOOL_CACHE/cargo-miri \
		cargo +nightly miri test --manifest-path "$REPO/crates/Cargo.toml" --locked -p rtpmgr --lib --tests 2>&1 |
		tee "$out"
	rc=${PIPESTATUS[0]}
	# Every test Miri cannot run, once more as a counted skip with its reason.
	sed -n 's/^test \(.*\) \.\.\. ignored, \(.*\)$/SKIP miri \1: \2/p' "$out"
	echo "SKIP miri doctests: the examples that open a ring need file mappings; host-cargo runs them all"
	rm -f "$out"
	return "$rc"
}

# ThreadSanitizer over the ring library's tests, std rebuilt instrumented (-Zbuild-std), in its own
# target dir so that the normal build keeps its cache. Any report fails the step (halt_on_error).
# That target dir is outside the clone: the instrumented std takes ~10 minutes to build cold, and
# cargo's fingerprints (toolchain, flags, sources) decide what a new clone may reuse.
tsan_tests() {
	cargo_env
	forget_workspace_builds "$TOOL_CACHE/cargo-tsan"
	RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" \
		CARGO_TARGET_DIR="$TOOL_CACHE/cargo-tsan" \
		cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu \
		--manifest-path "$REPO/crates/Cargo.toml" --locked -p rtpmgr --lib --tests
}

module_build() { # ARCH KDIR CROSS [make args...]: W=1 and sparse (C=1) must be silent
	local arch=$1 kdir=$2 cross=$3 out
	shift 3
	[ -d "$kdir" ] || { echo "kernel headers not found: $kdir"; return 1; }
	# shellcheck source=test/qemu/lib.sh
	. "$REPO/test/qemu/lib.sh"
	out=$(build_module "$arch" "$kdir" "$cross" W=1 C=1 "$@" 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	if grep -E 'warning:|error:' <<<"$out"; then
		echo "module build for $arch has warnings (W=1 / sparse must be clean)"
		return 1
	fi
	echo "rtp_mgr.ko for $arch ($(basename "$kdir")): W=1 and sparse clean"
}

module_arm64() {
	# The image step unpacks Debian's arm64 headers; do only that part here if needed.
	local kdir
	kdir=$(cat "$BUILD/kdir-arm64" 2>/dev/null || true)
	if [ ! -d "$kdir" ]; then
		RTPMGR_ONLY_KERNEL=1 "$REPO/test/qemu/build-image.sh" >/dev/null
		kdir=$(cat "$BUILD/kdir-arm64")
	fi
	module_build arm64 "$kdir" aarch64-linux-gnu-
}

module_amd64() {
	local kdir
	# The headers Debian's linux-headers-amd64 points at (installed by scripts/setup-host.sh), not
	# whatever else happens to be in /usr/src: the same kernel on every machine.
	kdir=/usr/src/linux-headers-$(debian_amd64_kver)
	module_build x86_64 "$kdir" ""
}

# The kernel release of the headers module-amd64 builds against (Debian's linux-headers-amd64).
debian_amd64_kver() {
	apt-cache depends linux-headers-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-headers-\(.*-amd64\)$/\1/p' | awk 'NR == 1'
}

# dkms as a distribution would run it: the source tree of `make -C kernel dkms-tree`, dkms's state in
# a temporary tree (--dkmstree), the module installed into /lib/modules/KVER/updates/dkms of Debian's
# packaged amd64 headers (named with -k: the running kernel may have no headers), then removed again.
dkms_test() {
	local kver version tmp ko info rc=0
	kver=$(debian_amd64_kver)
	if [ -z "$kver" ] || [ ! -d "/lib/modules/$kver/build" ]; then
		echo "no headers for Debian's amd64 kernel '$kver' (run scripts/setup-host.sh)"
		return 1
	fi
	version=$(sed -n 's/^VERSION := //p' "$REPO/kernel/Makefile")
	ko=/lib/modules/$kver/updates/dkms/rtp_mgr.ko
	if [ -e "$ko" ] || [ -e "$ko.xz" ]; then
		echo "$ko is already installed (not by this test): remove it first (dkms remove rtp_mgr/$version --all)"
		return 1
	fi
	# dkms runs depmod for KVER: if these headers have no module index yet, it goes again afterwards.
	local had_index=0
	[ -e "/lib/modules/$kver/modules.dep" ] && had_index=1
	tmp=$(mktemp -d)
	mkdir -p "$tmp/dkms"
	local dkms_cmd=(dkms --dkmstree "$tmp/dkms" --sourcetree "$tmp/usr/src" -m rtp_mgr -v "$version")
	local dk=("${dkms_cmd[@]}" -k "$kver")
	{
		make -s -C "$REPO/kernel" dkms-tree DESTDIR="$tmp" &&
			"${dk[@]}" add &&
			"$REPO/scripts/heavy-lock" nice -n 10 "${dk[@]}" build &&
			"${dk[@]}" install &&
			info=$(modinfo "$ko") &&
			echo "$info" &&
			grep -qx "version: *$version" <<<"$info" &&
			grep -Eq "^vermagic: *$kver SMP " <<<"$info" &&
			echo "modinfo: version $version, vermagic $kver"
	} || { echo "dkms add/build/install or the modinfo check failed"; rc=1; }
	"${dkms_cmd[@]}" remove --all || { echo "dkms remove --all failed"; rc=1; }
	if [ -n "$(find "/lib/modules/$kver/updates" -name 'rtp_mgr.ko*' 2>/dev/null)" ]; then
		echo "rtp_mgr is still in /lib/modules/$kver/updates after dkms remove"
		rc=1
	fi
	rmdir -p "/lib/modules/$kver/updates/dkms" 2>/dev/null || true
	[ "$had_index" = 1 ] || rm -f "/lib/modules/$kver"/modules.*
	rm -rf "$tmp"
	[ "$rc" = 0 ] && echo "dkms: rtp_mgr $version added, built, installed and removed for $kver"
	return "$rc"
}

# Other Debian kernel series than bookworm's 6.1: headers fetched (not installed) into
# /var/cache/rtpmgr/kernel-headers/<version>/. A series that cannot be obtained is a counted skip.
# Their Makefiles name the compiler Debian built them with (gcc-10 for 5.10): the host's gcc builds.
module_range() {
	local series arch kdir karch cross err rc=0 status
	err=$(mktemp)
	for series in 6.12 5.10; do
		for arch in amd64 arm64; do
			status=0
			kdir=$("$REPO/scripts/fetch-kernel-headers.sh" "$series" "$arch" 2>"$err") || status=$?
			if [ "$status" = 2 ]; then
				echo "SKIP module-range $series $arch: $(tail -n1 "$err")"
				continue
			elif [ "$status" != 0 ]; then
				cat "$err"
				rc=1
				continue
			fi
			grep '^fetch-kernel-headers:' "$err" || true
			case $arch in
			amd64) karch=x86_64 cross= ;;
			arm64) karch=arm64 cross=aarch64-linux-gnu- ;;
			esac
			MODULE_BUILD_DIR=$BUILD/module-$series-$arch module_build "$karch" "$kdir" "$cross" \
				CC="${cross}gcc" || rc=1
		done
	done
	rm -f "$err"
	module_range_trees || rc=1
	return "$rc"
}

# Kernel series that no package registry reachable from CI carries, built against prepared trees
# (configured and modules_prepare'd sources, scripts/prepare-kernel-tree.sh; a Yocto build's
# kernel build directory is one too). 6.6 is Yocto scarthgap's linux-yocto: Debian never shipped it
# in a suite that is still on the mirror, Ubuntu never shipped it.
PREPARED_SERIES="6.6"

# The trees of RTPMGR_KDIRS ("SERIES:ARCH=DIR ..."), then the cached ones, one "SERIES ARCH DIR" line
# each; a series and arch named in RTPMGR_KDIRS wins over the cache. A wanted series without a tree
# is a "SERIES ARCH" line: the caller skips it with the reason.
prepared_trees() {
	local entry series arch dir
	declare -A given=()
	for entry in ${RTPMGR_KDIRS:-}; do
		case $entry in
		*:*=?*) ;;
		*) echo "bad RTPMGR_KDIRS entry '$entry' (want SERIES:ARCH=DIR)" >&2; return 1 ;;
		esac
		series=${entry%%:*} arch=${entry#*:} dir=${entry#*=}
		arch=${arch%%=*}
		given[$series:$arch]=1
		echo "$series $arch $dir"
	done
	for series in $PREPARED_SERIES; do
		for arch in amd64 arm64; do
			[ -z "${given[$series:$arch]:-}" ] || continue
			dir=$TOOL_CACHE/kernel-trees/$series/$arch
			if [ -f "$dir/.complete" ]; then
				echo "$series $arch $dir"
			else
				echo "$series $arch"
			fi
		done
	done
}

module_range_trees() {
	local series arch dir karch cross release out rc=0 list
	list=$(prepared_trees) || return 1
	while read -r series arch dir; do
		[ -n "$series" ] || continue
		if [ -z "$dir" ]; then
			echo "SKIP module-range $series $arch: no package registry carries linux $series;" \
				"prepare a tree with scripts/prepare-kernel-tree.sh SRC $arch" \
				"$TOOL_CACHE/kernel-trees/$series/$arch or set RTPMGR_KDIRS=\"$series:$arch=DIR\"" \
				"(docs/kernel-module.md, 'Kernel range')"
			continue
		fi
		case $arch in
		amd64) karch=x86_64 cross= ;;
		arm64) karch=arm64 cross=aarch64-linux-gnu- ;;
		*) echo "RTPMGR_KDIRS: unknown arch '$arch' (known: amd64, arm64)"; rc=1; continue ;;
		esac
		# The tree must be the series it is named for: a 6.1 tree passed as 6.6 would test nothing new.
		release=$(cat "$dir/include/config/kernel.release" 2>/dev/null || true)
		case $release in
		"$series".*) ;;
		*) echo "$dir is not a prepared $series kernel tree (kernel.release '${release:-missing}')"; rc=1; continue ;;
		esac
		[ ! -f "$dir/rtpmgr-tree.txt" ] || sed 's/^/  tree: /' "$dir/rtpmgr-tree.txt"
		if [ -f "$dir/Module.symvers" ]; then
			MODULE_BUILD_DIR=$BUILD/module-$series-$arch-tree module_build "$karch" "$dir" "$cross" || rc=1
			continue
		fi
		# modules_prepare writes no Module.symvers: modpost reports each of the module's symbols
		# as undefined (a warning under KBUILD_MODPOST_WARN, else an error); those lines are
		# expected, and tree_symbols_exported checks the symbols against the source instead.
		out=$(MODULE_BUILD_DIR=$BUILD/module-$series-$arch-tree module_build "$karch" "$dir" "$cross" \
			KBUILD_MODPOST_WARN=1) || { echo "$out"; rc=1; continue; }
		grep -vE -e '^WARNING: modpost: "[^"]*" \[.*\] undefined!$' -e '^WARNING: Module.symvers is missing.$' \
			-e '^ +(Modules may not|You may get many|You can set KBUILD_MODPOST_WARN|if you want to proceed)' \
			-e '^WARNING: modpost: suppressed [0-9]+ unresolved symbol warnings because there were too many\)$' \
			<<<"$out" || true
		tree_symbols_exported "$dir" "$karch" "$BUILD/module-$series-$arch-tree/rtp_mgr.ko" || rc=1
	done <<<"$list"
	return "$rc"
}

# tree_exports SRCDIR SRCARCH: the symbols a kernel source exports, as modpost would list them after
# a full build: EXPORT_*() in common code and in the target's arch/, plus the exports that kernel
# macros generate by token pasting (each rule below names its macro). What source text cannot tell:
# whether the config builds the exporting code.
tree_exports() {
	local src=$1 srcarch=$2
	{
		grep -rhoE --include='*.[chS]' --exclude-dir=Documentation --exclude-dir=tools \
			--exclude-dir=samples --exclude-dir=arch \
			'(EXPORT_[A-Z_]+|define_dev_printk_level|STANDARD_PARAM_DEF)\([A-Za-z0-9_]+' \
			"$src" "$src/arch/$srcarch" |
			sed -E -e 's/^EXPORT_STATIC_CALL[A-Z_]*\((.*)$/__SCT__\1\n__SCK__\1/' \
				-e 's/^STANDARD_PARAM_DEF\((.*)$/param_ops_\1\nparam_set_\1\nparam_get_\1/' \
				-e 's/^[A-Za-z_]+\(//'
		# arch/x86/lib/retpoline.S: GEN(reg) __EXPORT_THUNK(__x86_indirect_thunk_ ## reg).
		if grep -q '__EXPORT_THUNK(__x86_indirect_thunk_ ## reg)' "$src/arch/$srcarch/lib/retpoline.S" 2>/dev/null; then
			sed -n 's/^GEN(\(.*\))$/__x86_indirect_thunk_\1/p' "$src/arch/$srcarch/include/asm/GEN-for-each-reg.h"
		fi
	} | sort -u
}

# tree_symbols_exported KDIR KARCH KO: without a Module.symvers modpost cannot resolve the module's
# symbols against the kernel; every symbol KO imports must then be exported by the tree's source. A
# symbol the kernel does not export fails here as it would in modpost against a fully built kernel.
tree_symbols_exported() {
	local kdir=$1 karch=$2 ko=$3 srcdir srcarch=$2 syms missing
	srcdir=$(readlink -f "$kdir/source" 2>/dev/null || echo "$kdir")
	case $karch in
	x86_64) srcarch=x86 syms=$(nm -u "$ko") ;;
	arm64) syms=$(aarch64-linux-gnu-nm -u "$ko") ;;
	esac
	syms=$(awk '{ print $2 }' <<<"$syms" | sort -u)
	[ -n "$syms" ] || { echo "$ko imports no symbol: not a module build, check by hand"; return 1; }
	missing=$(comm -23 <(echo "$syms") <(tree_exports "$srcdir" "$srcarch"))
	if [ -n "$missing" ]; then
		echo "symbols rtp_mgr imports that $srcdir does not export (or exports through a macro"
		echo "tree_exports() in test/run-tests.sh does not know yet):"
		echo "$missing"
		return 1
	fi
	echo "no Module.symvers in $kdir (modules_prepare only): all $(wc -l <<<"$syms") symbols" \
		"rtp_mgr imports are exported by $srcdir"
}

device_tests() {
	"$REPO/test/qemu/boot.sh" test ${QEMU_APPEND:-} || return 1
	# The capture suite's pcap, printed on the console, decoded by tshark here.
	"$REPO/test/qemu/check-guest-pcap.sh" "$BUILD/logs/console-test.log"
}

# The device suite and the fuzzer on the sanitizer kernel (test/qemu/build-debug-kernel.sh, cached in
# /var/cache/rtpmgr/debug-kernel). The guest fails its dmesg-clean and kmemleak steps on any report;
# the console log is checked here again, as a second line of defence (the guest's own grep could be
# skipped by a hang or a panic after the marker).
sanitizer_kernel() {
	local console=$BUILD/logs/console-test-debug.log reports
	RTPMGR_KERNEL=debug "$REPO/test/qemu/build-image.sh" || return 1
	RTPMGR_KERNEL=debug RTPMGR_QEMU_TIMEOUT=${RTPMGR_QEMU_TIMEOUT:-1500} "$REPO/test/qemu/boot.sh" test \
		rtpmgr.suites=all,fuzz "rtpmgr.env.RTPMGR_FUZZ_SECONDS=${RTPMGR_FUZZ_SECONDS:-120}" \
		${SANITIZER_APPEND:-} ${QEMU_APPEND:-} || return 1
	grep '^=== suite .* took' "$console" || true
	if grep -q '^SKIP fuzz' "$console"; then
		echo "!!! SKIPPED: the fuzz suite ($(sed -n 's/^SKIP fuzz: //p' "$console"))"
	fi
	# Kernel lines only (printk timestamps): user-space output may say WARNING too.
	reports=$(grep -E '^\[ *[0-9]+\.[0-9]+\] .*(BUG: |WARNING: |UBSAN: |kmemleak: .*suspected|Oops|general protection)' \
		"$console" || true)
	if [ -n "$reports" ]; then
		echo "$reports"
		echo "sanitizer reports in $console (see docs/testing.md, 'Reading a KASAN report')"
		return 1
	fi
	echo "sanitizer kernel: no KASAN/KFENCE/lockdep/UBSAN/kmemleak report and no WARN"
}

ota_tests() {
	if [ -x "$REPO/test/ota/run-ota-tests.sh" ]; then
		"$REPO/test/ota/run-ota-tests.sh"
	else
		echo "test/ota/run-ota-tests.sh not present: nothing to run"
	fi
}

run_step host-commands python3 "$REPO/scripts/check-commands.py"
run_step host-cargo host_cargo
run_step host-clippy host_clippy
run_step miri miri_tests
run_step tsan tsan_tests
run_step module-arm64 module_arm64
run_step module-amd64 module_amd64
run_step dkms dkms_test
run_step module-range module_range
run_step lsm-policies "$REPO/scripts/check-lsm.sh"
run_step checkpatch "$REPO/test/checkpatch/run-checkpatch.sh"
run_step layer-checks "$REPO/scripts/check-layer.sh"
run_step image "$REPO/test/qemu/build-image.sh"
run_step device-tests device_tests
run_step sanitizer-kernel sanitizer_kernel
run_step ota ota_tests

print_summary
echo "all steps passed"
echo "steps: ${#summary[@]} passed, 0 failed"
