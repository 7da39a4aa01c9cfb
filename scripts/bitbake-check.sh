#!/usr/bin/env bash
# bitbake-check.sh - parse the layer and compute the images' task graphs with BitBake, through kas,
# without network, for every supported combination, then run yocto-check-layer on the layer.
#
# Combinations (name: kas files, each + kas/offline.yml):
#   qemuarm64                      kas.yml
#   qemuarm64-systemd              kas.yml:kas/systemd.yml
#   qemuarm64-rauc                 kas.yml:kas/rauc.yml
#   qemuarm64-rauc-systemd         kas.yml:kas/rauc.yml:kas/systemd.yml
#   raspberrypi4-64[-systemd|-rauc|-rauc-systemd]   the same with kas/raspberrypi4-64.yml
#   qemuarm64-selinux              kas.yml:kas/selinux.yml
#   qemuarm64-selinux-systemd      kas.yml:kas/selinux.yml:kas/systemd.yml
#   qemuarm64-apparmor             kas.yml:kas/apparmor.yml
#   qemuarm64-apparmor-systemd     kas.yml:kas/apparmor.yml:kas/systemd.yml
# Each runs `bitbake -p` and `bitbake -g` for rtpmgr-image and rtpmgr-image-dev (and rtpmgr-bundle
# with RAUC) and counts ERROR and WARNING lines. RAUC combinations first check that a missing signing
# CA stops the parse with the command to make one (meta-rtpmgr's rtpmgr_signing class), then make
# meta-rauc's development CA in their build directory and check the task graph: U-Boot built on
# qemuarm64, do_image_wic after rtpmgr-boot-script:do_deploy, the development-CA warning. SELinux
# combinations check that rtpmgr-image installs rtpmgr-selinux and refpolicy, that rtpmgr-selinux
# depends on refpolicy's sysroot (its headers) and is built for the policy refpolicy builds, and that
# the image labels its root filesystem (meta-selinux's selinux_set_labels). AppArmor combinations
# check that rtpmgr-image installs rtpmgr-apparmor and apparmor, that linux-yocto gets meta-security's
# AppArmor configuration fragment, and that the profiles are loaded before the services start: on
# sysvinit rtpmgr-apparmor installs its init script and registers it with update-rc.d at a start
# level below rtp-rx's and rtp-feeder's; on systemd it installs no init script and every unit of
# rtp-app and rtp-feeder orders itself after apparmor.service (the unit apparmor enables).
#
# What it proves: every recipe, class and bbappend parses (`bitbake -p`: syntax, inherits, file://
# files) and every DEPENDS, RDEPENDS and IMAGE_INSTALL entry resolves (`bitbake -g`). It builds
# nothing. Dynamically split package names (GStreamer plugins) are checked against the recipes'
# PACKAGES_DYNAMIC split rule separately (plain combinations), see docs/yocto.md.
#
# yocto-check-layer (poky's scripts/yocto-check-layer, about 15 minutes) runs last, on meta-rtpmgr
# with meta-rust-bin, meta-rauc and meta-raspberrypi as dependencies, in a build directory that does
# not have the layer in BBLAYERS. Skip it with --no-yocto-check-layer.
#
# Needs (CI has none of these, so there it skips with a message and exit status 0):
#   - clones of the pinned layers in KAS_WORK_DIR (default build/kas-work), at the commits of kas.yml,
#     kas/raspberrypi4-64.yml, kas/rauc.yml, kas/selinux.yml and kas/apparmor.yml: poky/,
#     meta-rust-bin/, meta-raspberrypi/, meta-rauc/, meta-openembedded/, meta-selinux/, meta-security/
#     (e.g. `git clone https://git.yoctoproject.org/poky build/kas-work/poky`, then check out the commit)
#   - kas (build/venv from scripts/check-layer.sh, or on PATH)
#   - the host tools of oe-core's sanity check (Debian 12): gawk diffstat texinfo chrpath socat
#     python3-pexpect iputils-ping python3-git python3-jinja2 python3-subunit zstd lz4 file locales
#     cpio, and the en_US.UTF-8 locale
#   - an unprivileged user: BitBake refuses to run as root. Run as root, the script runs BitBake as
#     BITBAKE_USER (default: yocto, created if missing) and gives it build/kas-work and the build dirs.
#
# Usage: scripts/bitbake-check.sh [--no-yocto-check-layer] [COMBINATION...]   (default: all twelve)
# Env:   KAS_WORK_DIR, BITBAKE_USER, RTPMGR_HEAVY_LOCK (default /tmp/rtpmgr/heavy.lock),
#        KAS_EXTRA (more kas files appended to each list, e.g. ":build/mirror.yml" for a local mirror)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
KAS_WORK_DIR=$(realpath -m "${KAS_WORK_DIR:-$TOP/build/kas-work}")
BITBAKE_USER=${BITBAKE_USER:-yocto}
LOCK=${RTPMGR_HEAVY_LOCK:-/tmp/rtpmgr/heavy.lock}
ycl=1
targets=()
for arg in "$@"; do
	case $arg in
	--no-yocto-check-layer) ycl=0 ;;
	*) targets+=("$arg") ;;
	esac
done
all=(qemuarm64 qemuarm64-systemd qemuarm64-rauc qemuarm64-rauc-systemd
	raspberrypi4-64 raspberrypi4-64-systemd raspberrypi4-64-rauc raspberrypi4-64-rauc-systemd
	qemuarm64-selinux qemuarm64-selinux-systemd qemuarm64-apparmor qemuarm64-apparmor-systemd)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

skip() { printf 'bitbake-check: SKIPPED: %s\n' "$*"; exit 0; }
die() { printf 'bitbake-check: error: %s\n' "$*" >&2; exit 1; }

kas_files_of() {
	local files=kas.yml
	case $1 in
	qemuarm64*) ;;
	raspberrypi4-64*) files=$files:kas/raspberrypi4-64.yml ;;
	*) die "unknown combination '$1' (one of: ${all[*]})" ;;
	esac
	case $1 in *-rauc*) files=$files:kas/rauc.yml ;; esac
	case $1 in *-selinux*) files=$files:kas/selinux.yml ;; esac
	case $1 in *-apparmor*) files=$files:kas/apparmor.yml ;; esac
	case $1 in *-systemd) files=$files:kas/systemd.yml ;; esac
	echo "$files:kas/offline.yml"
}
layers_of() {
	local layers="poky meta-rust-bin"
	case $1 in raspberrypi4-64*) layers="$layers meta-raspberrypi" ;; esac
	case $1 in *-rauc*) layers="$layers meta-rauc" ;; esac
	case $1 in *-selinux*) layers="$layers meta-openembedded meta-selinux" ;; esac
	case $1 in *-apparmor*) layers="$layers meta-openembedded meta-security" ;; esac
	echo "$layers"
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
# Parse, both images' task graphs (and the bundle's with RAUC), then the variables the split-name
# check needs (bitbake -e: a few seconds each).
graph_cmds='bitbake -p && bitbake -g rtpmgr-image-dev && mv task-depends.dot task-depends-dev.dot &&
	mv pn-buildlist pn-buildlist-dev && bitbake -g rtpmgr-image'
# shellcheck disable=SC2016  # $r is expanded by the shell kas starts, not here
env_cmds='bitbake -e rtpmgr-image >env-image && bitbake -e rtp-feeder >env-rtp-feeder &&
	for r in gstreamer1.0-plugins-base gstreamer1.0-plugins-good; do bitbake -e $r >env-$r || exit 1; done'
# SELinux: the module recipe and the policy it is built for (bitbake -e takes the virtual name).
selinux_cmds='bitbake -e rtpmgr-selinux >env-rtpmgr-selinux && bitbake -e virtual/refpolicy >env-refpolicy'
# AppArmor: the profile recipe, rtp-app (rtp-rx's start level, its units), apparmor (its unit) and
# the kernel (its configuration fragments).
apparmor_cmds='bitbake -e rtpmgr-apparmor >env-rtpmgr-apparmor && bitbake -e rtp-app >env-rtp-app &&
	bitbake -e apparmor >env-apparmor && bitbake -e virtual/kernel >env-kernel'
# The signature data of rtp-mgr's do_fetch (the git source in the checkout) and do_install (the
# install manifest in the layer), written without running anything (-S none), as bitbake-dumpsig
# prints it: nothing in them but file names may hold the checkout's path (check-layer-rules.py,
# host_paths_not_hashed, is the static side). From a full parse: after a partial re-parse (the
# rtpmgr recipes re-parse whenever HEAD moves) BitBake 2.8 dumps stale variable values from its
# SiggenRecipeInfo cache and stops with "Basehash mismatch", so the parse cache goes first.
# shellcheck disable=SC2016  # $t and $f are expanded by the shell kas starts, not here
sig_cmds='rm -f tmp/cache/bb_cache*.dat* && bitbake -S none -c install rtp-mgr >sig-run.log && for t in do_fetch do_install; do
	f=$(ls -t tmp/stamps/*/rtp-mgr/*.$t.sigdata.* | head -n 1) && bitbake-dumpsig "$f" >sig-rtp-mgr-$t.txt || exit 1; done'

# kas_shell BUILD_DIR KAS_FILES CMDS: one kas shell as the BitBake user, under the heavy-work lock.
kas_shell() {
	mkdir -p "$(dirname "$LOCK")"
	# A parse keeps both cores busy for minutes: take the shared heavy-work lock (scripts/heavy-lock
	# when the checkout has it: re-entrant), be nice.
	local locker=(flock "$LOCK")
	[ -x "$TOP/scripts/heavy-lock" ] && locker=("$TOP/scripts/heavy-lock")
	(cd "$TOP" && "${locker[@]}" nice -n 10 "${as_user[@]}" env \
		KAS_WORK_DIR="$KAS_WORK_DIR" KAS_BUILD_DIR="$1" GITCONFIG_FILE="$gitconfig" \
		"$KAS" shell "$2" -c "$3")
}

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

# check_apparmor COMBINATION BUILD_DIR: the hook of DISTRO_FEATURES rtpmgr-apparmor (rtpmgr-image.bb,
# conf/include/rtpmgr-apparmor.inc) and the order in which the profiles and the services start.
check_apparmor() {
	local b=$2
	expect "rtpmgr-image installs rtpmgr-apparmor and apparmor" \
		bash -c "grep -qx rtpmgr-apparmor '$b/pn-buildlist' && grep -qx apparmor '$b/pn-buildlist'"
	# meta-security's linux-yocto bbappend adds it only with DISTRO_FEATURES security.
	expect "the kernel is configured with AppArmor (KERNEL_FEATURES has features/apparmor/apparmor.scc)" \
		grep -q '^KERNEL_FEATURES=".*features/apparmor/apparmor\.scc' "$b/env-kernel"
	python3 - "$1" "$b" <<'EOF' || rc=1
import pathlib, re, sys
combo, build = sys.argv[1], pathlib.Path(sys.argv[2])
def text(env):
    return (build / env).read_text()
def var(env, name):
    m = re.search(r'^%s="(.*)"$' % re.escape(name), text(env), re.M)
    return m.group(1) if m else ""
def func(env, name):
    m = re.search(r'^%s\(\) \{\n(.*?)^\}$' % re.escape(name), text(env), re.M | re.S)
    return m.group(1) if m else ""
bad = 0
def expect(what, ok):
    global bad
    print(f"    {'ok' if ok else 'NOT OK'}: {what}")
    bad += not ok
def start_level(env, script):
    # The start level update-rc.d registers SCRIPT at, None if it registers nothing: the package's
    # postinst gets updatercd_postinst ("update-rc.d $OPT rtp-rx defaults 90 10", as bitbake -e
    # expands it) only from populate_packages_updatercd, which runs only with DISTRO_FEATURES
    # sysvinit (PACKAGESPLITFUNCS) and when not inhibited.
    if ("populate_packages_updatercd" not in var(env, "PACKAGESPLITFUNCS").split()
            or var(env, "INHIBIT_UPDATERCD_BBCLASS")):
        return None
    post = func(env, "updatercd_postinst")
    m = re.search(r"^\s*update-rc\.d \$OPT %s (?:defaults|start) (\d+)" % re.escape(script), post, re.M)
    return int(m.group(1)) if m else None
# do_install as expanded: the init script is installed inside "if true; then" (sysvinit) or
# "if false; then" (no sysvinit).
installs_init = re.search(r"^\s*if true; then\n\s*install .*/etc/init\.d/rtpmgr-apparmor$",
                          func("env-rtpmgr-apparmor", "do_install"), re.M)
expect("rtpmgr-apparmor RDEPENDS on apparmor (apparmor_parser)",
       "apparmor" in var("env-rtpmgr-apparmor", "RDEPENDS:rtpmgr-apparmor").split())
expect("rtpmgr-image's IMAGE_INSTALL has rtpmgr-apparmor", "rtpmgr-apparmor" in var("env-image", "IMAGE_INSTALL").split())
if combo.endswith("-systemd"):
    expect("rtpmgr-apparmor installs and registers no init script (systemd: apparmor.service loads the profiles)",
           not installs_init and start_level("env-rtpmgr-apparmor", "rtpmgr-apparmor") is None)
    units = var("env-apparmor", "SYSTEMD_SERVICE:apparmor").split()
    expect(f"apparmor's package enables apparmor.service ({units})", "apparmor.service" in units)
    for env, pkgs in (("env-rtp-app", ("rtp-app", "rtp-app-metrics")), ("env-rtp-feeder", ("rtp-feeder",))):
        dirs = [pathlib.Path(p) for p in var(env, "FILESPATH").split(":") if p]
        for pkg in pkgs:
            for unit in var(env, "SYSTEMD_SERVICE:" + pkg).split():
                # A timer starts the service of its name: that service must wait for the profiles.
                unit = re.sub(r"\.timer$", ".service", unit)
                path = next((d / unit for d in dirs if (d / unit).is_file()), None)
                after = re.findall(r"^After=(.*)$", path.read_text(), re.M) if path else []
                expect(f"{unit} ({pkg}) starts after apparmor.service",
                       any("apparmor.service" in a.split() for a in after))
else:
    level = start_level("env-rtpmgr-apparmor", "rtpmgr-apparmor")
    rx, feeder = start_level("env-rtp-app", "rtp-rx"), start_level("env-rtp-feeder", "rtp-feeder")
    files = var("env-rtpmgr-apparmor", "FILES:rtpmgr-apparmor").split()
    expect("rtpmgr-apparmor installs /etc/init.d/rtpmgr-apparmor into its package (sysvinit)",
           bool(installs_init) and any(f in ("/etc", "/etc/init.d", "/etc/init.d/rtpmgr-apparmor") for f in files))
    expect(f"update-rc.d starts rtpmgr-apparmor (level {level}) before rtp-rx ({rx}) and rtp-feeder ({feeder})",
           None not in (level, rx, feeder) and level < min(rx, feeder))
sys.exit(1 if bad else 0)
EOF
}

# expect WHAT CMD...: one named assertion about a combination's results.
expect() {
	if "${@:2}"; then echo "    ok: $1"; else echo "    NOT OK: $1"; rc=1; fi
}

rc=0
summary=()
for t in "${targets[@]}"; do
	files=$(kas_files_of "$t")${KAS_EXTRA:-}
	build=$TOP/build/kas-build/$t
	mkdir -p "$build"
	[ ${#as_user[@]} -eq 0 ] || chown "$BITBAKE_USER:" "$build"
	printf '\n==> %s: kas shell %s\n' "$t" "$files"
	for l in $(layers_of "$t"); do
		printf '    %-17s %s\n' "$l" "$(git -c safe.directory='*' -C "$KAS_WORK_DIR/$l" log -1 --format='%H %s')"
	done
	cmds=$graph_cmds
	case $t in
	*-rauc*)
		cmds="$cmds && bitbake -g rtpmgr-bundle && mv task-depends.dot task-depends-bundle.dot && bitbake -g rtpmgr-image"
		# Without the signing CA the parse must stop at once, saying what to run.
		rm -rf "$build/openssl-ca"
		kas_shell "$build" "$files" 'bitbake -p' >"$build/no-ca.log" 2>&1 && nocarc=0 || nocarc=$?
		expect "without a signing CA the parse stops with the command to make one (exit $nocarc)" \
			grep -q "RAUC signing files do not exist.*openssl-ca.sh" "$build/no-ca.log"
		# The development CA, as docs/ota.md tells users to make it.
		(cd "$build" && "${as_user[@]}" bash "$KAS_WORK_DIR/meta-rauc/scripts/openssl-ca.sh" >openssl-ca.log 2>&1) ||
			die "meta-rauc's openssl-ca.sh failed, see $build/openssl-ca.log"
		;;
	*-selinux*) cmds="$cmds && $env_cmds && $selinux_cmds" ;;
	*-apparmor*) cmds="$cmds && $env_cmds && $apparmor_cmds" ;;
	*-systemd) cmds="$cmds && $env_cmds" ;;
	*) cmds="$cmds && $env_cmds && $sig_cmds" ;;
	esac
	start=$(date +%s)
	if kas_shell "$build" "$files" "$cmds" >"$build/check.log" 2>&1; then
		errors=$(grep -c '^ERROR:' "$build/check.log" || true)
		warnings=$(grep -c '^WARNING:' "$build/check.log" || true)
		printf '    ok in %ss (lock wait included): rtpmgr-image %s recipes, rtpmgr-image-dev %s; %s errors, %s warnings\n' \
			"$(($(date +%s) - start))" "$(wc -l <"$build/pn-buildlist")" "$(wc -l <"$build/pn-buildlist-dev")" \
			"$errors" "$warnings"
		grep -E '^(WARNING|ERROR):' "$build/check.log" | sort | uniq -c | sed 's/^/    /' || true
		[ "$errors" = 0 ] || rc=1
		summary+=("$t: ok, $errors errors, $warnings warnings")
		# The machine the combination names, not one a later kas file put back (a fragment that
		# includes kas.yml resets machine to qemuarm64).
		case $t in
		raspberrypi4-64*) expect "the image is built for the Pi (linux-raspberrypi, not linux-yocto)" \
			bash -c "grep -qx linux-raspberrypi '$build/pn-buildlist' && ! grep -qx linux-yocto '$build/pn-buildlist'" ;;
		*) expect "the image is built for qemuarm64 (linux-yocto)" grep -qx linux-yocto "$build/pn-buildlist" ;;
		esac
		case $t in
		*-rauc*)
			expect "do_image_wic runs after rtpmgr-boot-script:do_deploy" \
				grep -q '"rtpmgr-image.do_image_wic" -> "rtpmgr-boot-script.do_deploy"' "$build/task-depends.dot"
			expect "the development-CA warning is shown" grep -q 'signed with the DEVELOPMENT CA' "$build/check.log"
			expect "rtpmgr-bundle's graph has rtpmgr-image and rtpmgr-rauc-conf" \
				bash -c "grep -q '\"rtpmgr-rauc-conf.do_' '$build/task-depends-bundle.dot' && grep -q '\"rtpmgr-image.do_image_complete' '$build/task-depends-bundle.dot'"
			case $t in
			qemuarm64*) expect "U-Boot is built for the qemuarm64 A/B image" grep -qx u-boot "$build/pn-buildlist" ;;
			raspberrypi4-64*) expect "rtpmgr-boot-script is the Pi's U-Boot script, rpi-u-boot-scr is not built" \
				bash -c "grep -qx rtpmgr-boot-script '$build/pn-buildlist' && ! grep -qx rpi-u-boot-scr '$build/pn-buildlist'" ;;
			esac
			;;
		*)
			# Anything but the list of file checksums (whose names are not hashed, only the sums).
			case $t in *-systemd | *-selinux* | *-apparmor*) ;; *)
				for task in do_fetch do_install; do
					expect "no path of the checkout ($TOP) in rtp-mgr's $task signature data" \
						bash -c "[ -s '$build/sig-rtp-mgr-$task.txt' ] && ! grep -v '^This task depends on the checksums of files' '$build/sig-rtp-mgr-$task.txt' | grep -F '$TOP'"
				done
			esac
			expect "rtpmgr-tests only in rtpmgr-image-dev" \
				bash -c "grep -qx rtpmgr-tests '$build/pn-buildlist-dev' && ! grep -qx rtpmgr-tests '$build/pn-buildlist'"
			check_split_names "$build" || rc=1
			;;
		esac
		case $t in *-selinux*)
			# The hook of DISTRO_FEATURES rtpmgr-selinux (rtpmgr-image.bb, conf/include/rtpmgr-selinux.inc).
			policy=$(sed -n 's/^POLICY_NAME="\(.*\)"$/\1/p' "$build/env-refpolicy")
			refpolicy=$(sed -n 's/^PN="\(.*\)"$/\1/p' "$build/env-refpolicy")
			expect "rtpmgr-image installs rtpmgr-selinux and $refpolicy" \
				bash -c "grep -qx rtpmgr-selinux '$build/pn-buildlist' && grep -qx '$refpolicy' '$build/pn-buildlist'"
			expect "rtpmgr-selinux compiles against $refpolicy's headers (its sysroot depends on $refpolicy:do_populate_sysroot)" \
				grep -q "\"rtpmgr-selinux.do_prepare_recipe_sysroot\" -> \"$refpolicy.do_populate_sysroot\"" "$build/task-depends.dot"
			expect "rtpmgr-selinux is built for the policy $refpolicy installs ($policy)" \
				grep -qx "RTPMGR_SELINUX_POLICY=\"$policy\"" "$build/env-rtpmgr-selinux"
			expect "the postinst that links the module in do_rootfs has the native semodule (PACKAGE_WRITE_DEPS)" \
				grep -q '"rtpmgr-selinux.do_package_write_ipk" -> "policycoreutils-native.do_populate_sysroot"' "$build/task-depends.dot"
			expect "rtpmgr-image labels its root filesystem (meta-selinux's selinux_set_labels)" \
				grep -q '^IMAGE_PREPROCESS_COMMAND=".*selinux_set_labels' "$build/env-image"
			;;
		esac
		case $t in *-apparmor*) check_apparmor "$t" "$build" ;; esac
	else
		tail -n 40 "$build/check.log" | sed 's/^/    /'
		printf '    FAILED (full log: %s)\n' "$build/check.log"
		summary+=("$t: FAILED ($(grep -c '^ERROR:' "$build/check.log" || true) errors)")
		rc=1
	fi
done

# --- yocto-check-layer ----------------------------------------------------------------------------
# In a build directory without meta-rtpmgr in BBLAYERS (kas puts it there: remove it first), with
# every layer the layer depends on or recommends given as a dependency (meta-rust-bin is removed
# too: yocto-check-layer adds its dependencies itself and refuses a layer listed twice).
if [ "$ycl" = 1 ]; then
	for l in meta-rauc meta-raspberrypi; do
		[ -d "$KAS_WORK_DIR/$l/.git" ] || skip "yocto-check-layer: no clone of $l in $KAS_WORK_DIR"
	done
	build=$TOP/build/kas-build/yocto-check-layer
	mkdir -p "$build"
	[ ${#as_user[@]} -eq 0 ] || chown "$BITBAKE_USER:" "$build"
	printf '\n==> yocto-check-layer meta-rtpmgr (dependencies: meta-rust-bin meta-rauc meta-raspberrypi)\n'
	start=$(date +%s)
	ycl_cmds="bitbake-layers remove-layer meta-rtpmgr meta-rust-bin && yocto-check-layer --no-auto-dependency \
		--dependency $KAS_WORK_DIR/meta-rust-bin $KAS_WORK_DIR/meta-rauc $KAS_WORK_DIR/meta-raspberrypi \
		-o $build/yocto-check-layer.log $TOP/meta-rtpmgr"
	if kas_shell "$build" "kas.yml:kas/offline.yml${KAS_EXTRA:-}" "$ycl_cmds" >"$build/check.log" 2>&1; then
		summary+=("yocto-check-layer: PASS in $(($(date +%s) - start)) s")
	else
		summary+=("yocto-check-layer: FAIL (log: $build/yocto-check-layer.log)")
		rc=1
	fi
	grep -E 'INFO: (SUMMARY|meta-rtpmgr|Ran [0-9]+ tests|OK|FAILED)|^(ERROR|FAIL):' "$build/check.log" | sed 's/^/    /' | tail -n 30
fi

printf '\n==> summary\n'
printf '    %s\n' "${summary[@]}"
exit $rc
