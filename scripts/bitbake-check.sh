#!/usr/bin/env bash
# bitbake-check.sh - parse the layer and compute the image's task graph with BitBake, through kas,
# for qemuarm64 (kas.yml) and the board (kas.yml:kas/raspberrypi4-64.yml), without network.
#
# What it proves: every recipe, class and bbappend parses (`bitbake -p`: syntax, inherits, file://
# files) and every DEPENDS, RDEPENDS and IMAGE_INSTALL entry of rtpmgr-image resolves (`bitbake -g`).
# It builds nothing. Dynamically split package names (GStreamer plugins) are checked against the
# recipes' PACKAGES_DYNAMIC split rule separately: see docs/yocto.md.
#
# Needs (CI has none of these, so there it skips with a message and exit status 0):
#   - clones of the pinned layers in KAS_WORK_DIR (default build/kas-work), at the commits of
#     kas.yml and kas/raspberrypi4-64.yml: poky/, meta-rust-bin/, meta-raspberrypi/ (e.g.
#     `git clone https://git.yoctoproject.org/poky build/kas-work/poky`, then check out the commit)
#   - kas (build/venv from scripts/check-layer.sh, or on PATH)
#   - the host tools of oe-core's sanity check (Debian 12): gawk diffstat texinfo chrpath socat
#     python3-pexpect iputils-ping python3-git python3-jinja2 python3-subunit zstd lz4 file locales
#     cpio, and the en_US.UTF-8 locale
#   - an unprivileged user: BitBake refuses to run as root. Run as root, the script runs BitBake as
#     BITBAKE_USER (default: yocto, created if missing) and gives it build/kas-work and the build dirs.
#
# Usage: scripts/bitbake-check.sh [qemuarm64|raspberrypi4-64]...   (default: both)
# Env:   KAS_WORK_DIR, BITBAKE_USER, RTPMGR_HEAVY_LOCK (default /tmp/rtpmgr/heavy.lock),
#        KAS_EXTRA (more kas files appended to each list, e.g. ":build/mirror.yml" for a local mirror)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
KAS_WORK_DIR=$(realpath -m "${KAS_WORK_DIR:-$TOP/build/kas-work}")
BITBAKE_USER=${BITBAKE_USER:-yocto}
LOCK=${RTPMGR_HEAVY_LOCK:-/tmp/rtpmgr/heavy.lock}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qemuarm64 raspberrypi4-64)

skip() { printf 'bitbake-check: SKIPPED: %s\n' "$*"; exit 0; }
die() { printf 'bitbake-check: error: %s\n' "$*" >&2; exit 1; }

kas_files_of() {
	case $1 in
	qemuarm64) echo "kas.yml:kas/offline.yml" ;;
	raspberrypi4-64) echo "kas.yml:kas/raspberrypi4-64.yml:kas/offline.yml" ;;
	*) die "unknown target '$1' (qemuarm64 or raspberrypi4-64)" ;;
	esac
}
layers_of() {
	case $1 in
	qemuarm64) echo "poky meta-rust-bin" ;;
	raspberrypi4-64) echo "poky meta-rust-bin meta-raspberrypi" ;;
	esac
}

# --- prerequisites --------------------------------------------------------------------------------
for t in "${targets[@]}"; do
	for l in $(layers_of "$t"); do
		[ -d "$KAS_WORK_DIR/$l/.git" ] ||
			skip "no clone of $l in $KAS_WORK_DIR (needed for $t); clone the layers pinned in kas.yml and kas/*.yml there"
	done
done
KAS=$TOP/build/venv/bin/kas
[ -x "$KAS" ] || KAS=$(command -v kas) || skip "kas not found: run scripts/check-layer.sh (creates build/venv) or pip install kas==5.5"
locale -a 2>/dev/null | grep -qix 'en_US.utf8' || die "the en_US.UTF-8 locale is missing (Debian: add it to /etc/locale.gen, run locale-gen)"
for tool in gawk diffstat makeinfo chrpath socat zstd lz4 file cpio; do
	command -v "$tool" >/dev/null || die "host tool $tool missing (see the header of this script)"
done

# BitBake refuses to run as root: as root, run it as $BITBAKE_USER and hand it the build dirs.
as_user=()
mkdir -p "$TOP/build/kas-build"
if [ "$(id -u)" = 0 ]; then
	id "$BITBAKE_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$BITBAKE_USER"
	chown -R "$BITBAKE_USER:" "$KAS_WORK_DIR" "$TOP/build/kas-build"
	as_user=(runuser -u "$BITBAKE_USER" --)
fi
# That user may not be able to run root's kas (a venv on a Python under /root): then give it its own.
venv=$TOP/build/kas-build/venv
if ! "${as_user[@]}" "$KAS" --version >/dev/null 2>&1; then
	if ! "${as_user[@]}" "$venv/bin/kas" --version >/dev/null 2>&1; then
		echo "bitbake-check: $KAS does not run as $BITBAKE_USER; installing kas 5.5 into $venv"
		"${as_user[@]}" /usr/bin/python3 -m venv "$venv"
		"${as_user[@]}" "$venv/bin/pip" install --quiet --disable-pip-version-check kas==5.5
	fi
	KAS=$venv/bin/kas
fi
# kas runs BitBake with a fresh HOME; GITCONFIG_FILE is copied into it. The repository of this layer
# (fetched by the recipes with protocol=file) and the clones may belong to another user: trust them.
gitconfig=$TOP/build/kas-build/gitconfig
printf '[safe]\n\tdirectory = *\n' >"$gitconfig"
chmod a+r "$gitconfig"

# --- the checks -----------------------------------------------------------------------------------
# Parse, task graph, then the variables the split-name check needs (bitbake -e: a few seconds each).
# shellcheck disable=SC2016  # $r is expanded by the shell kas starts, not here
bitbake_cmds='bitbake -p && bitbake -g rtpmgr-image &&
	bitbake -e rtpmgr-image >env-image && bitbake -e rtp-feeder >env-rtp-feeder &&
	for r in gstreamer1.0-plugins-base gstreamer1.0-plugins-good; do bitbake -e $r >env-$r || exit 1; done'

# A misspelt dynamically split package name passes `bitbake -g` and fails only at rootfs time.
# Check every gstreamer1.0-plugins-<set>-<plugin> the image and rtp-feeder use: the recipe declares
# the dynamic split, its meson configuration does not disable the plugin, and libgst<plugin>.so is a
# plugin of that GStreamer module (the host's Debian package of the same 1.22 module lists it).
check_split_names() {
	python3 - "$1" <<'EOF'
import pathlib, re, subprocess, sys
build = pathlib.Path(sys.argv[1])
def var(env, name):
    m = re.search(r'^%s="(.*)"$' % re.escape(name), (build / env).read_text(), re.M)
    return m.group(1).split() if m else []
names = set(var("env-image", "IMAGE_INSTALL")) | set(var("env-rtp-feeder", "RDEPENDS:rtp-feeder"))
bad = 0
for name in sorted(names):
    m = re.match(r"^(gstreamer1\.0-plugins-(base|good))-(.+)$", name)
    if not m:
        continue
    recipe, plugin = m.group(1), m.group(3)
    env = "env-" + recipe
    dynamic = " ".join(var(env, "PACKAGES_DYNAMIC"))
    meson = " ".join(var(env, "EXTRA_OEMESON") + var(env, "PACKAGECONFIG_CONFARGS"))
    try:
        debian = subprocess.run(["dpkg", "-L", recipe], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        print(f"    {name}: cannot check: Debian package {recipe} not installed on this host")
        bad += 1
        continue
    problems = []
    if "^%s-.*" % recipe not in dynamic:
        problems.append(f"{recipe} declares no dynamic split ({dynamic!r})")
    if re.search(r"-D%s=disabled" % re.escape(plugin), meson):
        problems.append(f"{recipe} is configured with -D{plugin}=disabled")
    if not re.search(r"/gstreamer-1\.0/libgst%s\.so$" % re.escape(plugin), debian, re.M):
        problems.append(f"libgst{plugin}.so is not a plugin of {recipe}")
    print(f"    {name}: {'; '.join(problems) if problems else 'ok (libgst%s.so, split by %s)' % (plugin, recipe)}")
    bad += bool(problems)
sys.exit(1 if bad else 0)
EOF
}

rc=0
for t in "${targets[@]}"; do
	files=$(kas_files_of "$t")${KAS_EXTRA:-}
	build=$TOP/build/kas-build/$t
	mkdir -p "$build"
	[ ${#as_user[@]} -eq 0 ] || chown "$BITBAKE_USER:" "$build"
	printf '\n==> %s: kas shell %s -c "bitbake -p && bitbake -g rtpmgr-image"\n' "$t" "$files"
	for l in $(layers_of "$t"); do
		printf '    %-17s %s\n' "$l" "$(git -c safe.directory='*' -C "$KAS_WORK_DIR/$l" log -1 --format='%H %s')"
	done
	start=$(date +%s)
	mkdir -p "$(dirname "$LOCK")"
	# A parse keeps both cores busy for minutes: take the shared heavy-work lock, be nice.
	if (cd "$TOP" && flock "$LOCK" nice -n 10 "${as_user[@]}" env \
		KAS_WORK_DIR="$KAS_WORK_DIR" KAS_BUILD_DIR="$build" GITCONFIG_FILE="$gitconfig" \
		"$KAS" shell "$files" -c "$bitbake_cmds") >"$build/check.log" 2>&1; then
		printf '    ok in %ss (lock wait included): %s recipes in the image graph; %s errors, %s warnings\n' \
			"$(($(date +%s) - start))" "$(wc -l <"$build/pn-buildlist")" \
			"$(grep -c '^ERROR:' "$build/check.log" || true)" "$(grep -c '^WARNING:' "$build/check.log" || true)"
		grep -E '^(WARNING|ERROR):' "$build/check.log" | sed 's/^/    /' || true
		check_split_names "$build" || rc=1
	else
		tail -n 40 "$build/check.log" | sed 's/^/    /'
		printf '    FAILED (full log: %s)\n' "$build/check.log"
		rc=1
	fi
done
exit $rc
