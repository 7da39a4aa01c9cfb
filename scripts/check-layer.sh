#!/usr/bin/env bash
# check-layer.sh - static checks of the Yocto layer; they run in CI (no layer clones, no BitBake).
#
#   1. oelint-adv over every recipe, append and class of meta-rtpmgr: no error, no warning
#      (suppressions are inline `# nooelint:` comments, each with its reason).
#   2. every kas file (kas.yml, kas/*.yml) validated against the JSON schema kas itself ships.
#   3. the files the layer and the QEMU harness share exist exactly once, in the layer.
#   4. the generated crate list (classes-recipe/rtpmgr_crates.bbclass) matches crates/Cargo.lock.
#   5. the sysvinit scripts are POSIX sh (dash -n, busybox sh -n and shellcheck when available).
#   6. the systemd units pass systemd-analyze verify (when available).
#   7. the layer's own rules (scripts/check-layer-rules.py): reproducible sources, one install
#      manifest, the RAUC and systemd integration; see `scripts/check-layer-rules.py --list`.
#   8. the drawings in docs/ were rendered from their current Graphviz sources (not a layer check,
#      but a static one that needs no build, like these: scripts/render-diagrams.sh --check).
#
# Needs python3 with venv; installs kas and oelint-adv (pinned) into build/venv on first use (~10 s,
# network to PyPI once). Exit status 0 only if every check passes.
#
# Usage: scripts/check-layer.sh
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
LAYER=$TOP/meta-rtpmgr
VENV=${VENV:-$TOP/build/venv}
KAS_VERSION=5.5
OELINT_VERSION=9.11.2

failures=0
step() { printf '\n==> %s\n' "$1"; }
ok() { printf '    ok: %s\n' "$*"; }
bad() { printf '    FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }

# --- tools ----------------------------------------------------------------------------------------
step "tools: kas $KAS_VERSION and oelint-adv $OELINT_VERSION in $VENV"
if ! "$VENV/bin/python" -c "import kas, oelint_adv" 2>/dev/null ||
	[ "$("$VENV/bin/kas" --version 2>&1 | awk '{print $2}')" != "$KAS_VERSION" ] ||
	[ "$("$VENV/bin/oelint-adv" --version 2>&1 | awk '{print $NF}')" != "$OELINT_VERSION" ]; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install --quiet --disable-pip-version-check \
		"kas==$KAS_VERSION" "oelint-adv==$OELINT_VERSION"
fi
ok "$("$VENV/bin/kas" --version 2>&1), oelint-adv $("$VENV/bin/oelint-adv" --version 2>&1 | awk '{print $NF}')"

# --- 1. oelint-adv --------------------------------------------------------------------------------
step "oelint-adv: every recipe, append and class of meta-rtpmgr"
mapfile -t lint_files < <(cd "$TOP" && find meta-rtpmgr -type f \( -name '*.bb' -o -name '*.bbappend' \
	-o -name '*.bbclass' \) | sort)
# Rules: oelint-adv's own set for scarthgap, minus oelint.vars.homepageping, which makes an HTTP
# request for every HOMEPAGE even when suppressed (CI runs without network).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/oelint-adv" --release scarthgap --print-rulefile |
	"$VENV/bin/python" -c 'import json,sys; r=json.load(sys.stdin); r.pop("oelint.vars.homepageping", None); print(json.dumps(r))' >"$tmp/rules.json"
# Variables oelint-adv does not know: meta-rust-bin's cargo_bin class, module.bbclass's MAKE_TARGETS,
# kernel-module-split's module_conf_<module>, and this layer's own.
cat >"$tmp/constants.json" <<'EOF'
{"variables": {"known": [
  "CARGO_BINDIR", "CARGO_HOME", "CARGO_MANIFEST_PATH", "CARGO_VENDOR_DIR", "EXTRA_CARGO_FLAGS",
  "MAKE_TARGETS", "module_conf_rtp_mgr",
  "IMAGE_ROOTFS_MAXSIZE", "RPI_EXTRA_IMAGE_BOOT_FILES", "RPI_USE_U_BOOT", "QB_DEFAULT_BIOS", "QB_DEFAULT_FSTYPE",
  "QB_DEFAULT_KERNEL", "RTPMGR_AB_BOOT_FILES", "RTPMGR_DEVELOPMENT_CA_DIR", "RTPMGR_READ_ONLY_ROOTFS",
  "RTPMGR_VERSION", "EXTRA_RUSTFLAGS", "RTPMGR_CRATES_LICENSE",
  "RTPMGR_CARGO_LOCK_SHA256", "RTPMGR_GIT_URI", "RTPMGR_GSTREAMER", "RTPMGR_INSTALL_MANIFEST",
  "RTPMGR_INSTALL_PACKAGE", "RTPMGR_LAYERDIR", "RTPMGR_SRCREV", "RTPMGR_TESTDIR", "RTPMGR_TOPDIR",
  "RTPMGR_UNIT_SUFFIXES", "KERNEL_DTBVENDORED"
]}}
EOF
# Suppressions are inline (`# nooelint: <rule> - <reason>`), next to what they excuse. Findings of
# severity "info" are hidden: the remaining ones are suggestions that do not apply (BUGTRACKER: no
# public tracker yet; BBCLASSEXTEND: nothing here runs on the build host).
# --constantmods=+FILE must be written with "=", or the option swallows the file list.
mkdir -p "$TOP/build"
if (cd "$TOP" && "$VENV/bin/oelint-adv" --quiet --hide info --release scarthgap --rulefile "$tmp/rules.json" \
	--constantmods="+$tmp/constants.json" "${lint_files[@]}") >"$TOP/build/oelint.log" 2>&1 &&
	[ ! -s "$TOP/build/oelint.log" ]; then
	ok "${#lint_files[@]} files, no errors, no warnings"
else
	sed "s|$TOP/||" "$TOP/build/oelint.log"
	bad "oelint-adv findings (above)"
fi

# --- 2. kas schema --------------------------------------------------------------------------------
step "kas: every kas file against kas's JSON schema"
mapfile -t kas_files < <(cd "$TOP" && ls kas.yml kas/*.yml)
if (cd "$TOP" && "$VENV/bin/python" - "${kas_files[@]}") <<'EOF'; then
import json, pathlib, sys
import jsonschema, yaml, kas

schema = json.loads((pathlib.Path(kas.__file__).parent / "schema-kas.json").read_text())
errors = 0
for name in sys.argv[1:]:
    doc = yaml.safe_load(pathlib.Path(name).read_text())
    found = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    for e in found:
        print(f"    {name}: {'/'.join(map(str, e.path)) or '<root>'}: {e.message}", file=sys.stderr)
    header = doc.get("header", {})
    if header.get("version", 0) < 14:
        print(f"    {name}: header version {header.get('version')} < 14", file=sys.stderr)
        errors += 1
    # Every remote repository is pinned: a commit, not only a branch.
    for repo, spec in (doc.get("repos") or {}).items():
        if spec and spec.get("url") and not spec.get("commit"):
            print(f"    {name}: repo {repo} has a url but no commit", file=sys.stderr)
            errors += 1
    errors += len(found)
    print(f"    {name}: {'ok' if not found else 'invalid'}")
sys.exit(1 if errors else 0)
EOF
	ok "${#kas_files[@]} kas files valid"
else
	bad "kas files invalid"
fi

# --- 3. shared files ------------------------------------------------------------------------------
step "shared files: exist once, in the layer, used by the layer and the QEMU harness"
shared=(
	recipes-kernel/rtp-mgr/files/60-rtp-mgr.rules
	recipes-kernel/rtp-mgr/files/rtp_mgr.conf
	recipes-apps/rtp-app/files/rtp-rx.init
	recipes-apps/rtp-app/files/rtp-rx.service
	recipes-apps/rtp-app/files/rtp-rx.default
	recipes-apps/rtp-feeder/files/rtp-feeder.init
	recipes-apps/rtp-feeder/files/rtp-feeder.service
	recipes-apps/rtp-feeder/files/feeder.toml
)
for f in "${shared[@]}"; do
	base=$(basename "$f")
	if [ ! -f "$LAYER/$f" ]; then
		bad "missing: meta-rtpmgr/$f"
		continue
	fi
	# Another file of the same name anywhere in the repository is a copy that will drift.
	copies=$(cd "$TOP" && git ls-files --cached --others --exclude-standard -- "*/$base" "$base")
	copies=$(printf '%s\n' "$copies" | grep -v -x -e "meta-rtpmgr/$f" -e '' || true)
	if [ -n "$copies" ]; then
		bad "meta-rtpmgr/$f has copies: $copies"
	else
		ok "meta-rtpmgr/$f"
	fi
done
# The on-device suite is installed from test/device/ by rtpmgr-tests, not copied into the layer.
if [ -n "$(find "$LAYER" -name run-device-tests)" ]; then
	bad "a copy of run-device-tests in the layer: install it from test/device/"
fi

# --- 4. generated crate list ----------------------------------------------------------------------
step "crates: classes-recipe/rtpmgr_crates.bbclass matches crates/Cargo.lock"
if [ -f "$TOP/crates/Cargo.lock" ]; then
	if python3 "$TOP/scripts/gen-crates-inc.py" --check; then ok "up to date"; else bad "stale: run scripts/gen-crates-inc.py"; fi
else
	bad "crates/Cargo.lock does not exist: the Rust recipes cannot be built offline without it"
fi

# --- 5. init scripts ------------------------------------------------------------------------------
step "init scripts and the layer's other shell scripts: POSIX sh (they also run under busybox sh)"
for f in "$LAYER"/recipes-*/*/files/*; do
	[ "$(head -c 9 "$f")" = '#!/bin/sh' ] || continue
	name=${f#"$TOP"/}
	# dash, busybox and shellcheck come from scripts/setup-host.sh: a missing one fails, never skips.
	if ! dash -n "$f"; then
		bad "$name: dash -n failed"
	elif ! busybox sh -n "$f"; then
		bad "$name: busybox sh -n failed"
	elif grep -nE '^[^#]*(\[\[[[:blank:]]|function |source |\$\{[A-Za-z_]+//|<<<|declare |local -)' "$f"; then
		bad "$name: bash-isms (above)"
	elif ! shellcheck -s sh "$f"; then
		bad "$name: shellcheck findings (above)"
	else
		ok "$name"
	fi
done

# --- 6. systemd units ----------------------------------------------------------------------------
step "systemd units: systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
	bad "systemd-analyze not found: scripts/setup-host.sh installs it (package systemd)"
else
	units=$tmp/units
	mkdir -p "$units"
	for f in "$LAYER"/recipes-apps/*/files/*.service "$LAYER"/recipes-apps/*/files/*.timer; do
		# @bindir@ and the like are replaced in do_install (rtpmgr_install.bbclass): here with poky's
		# defaults. The programs are not installed on the build host: verify against /bin/true.
		sed -E -e 's|@bindir@|/usr/bin|g' -e 's|@sysconfdir@|/etc|g' -e 's|@libexecdir@|/usr/libexec|g' \
			-e 's#^(ExecStart|ExecCondition)=/usr/(bin|libexec)/[^ ]+#\1=/bin/true#' "$f" >"$units/$(basename "$f")"
	done
	# A timer is verified with the service it starts (same name).
	if systemd-analyze verify "$units"/*.service "$units"/*.timer; then
		for u in "$units"/*.service; do
			ok "$(basename "$u"): $(systemd-analyze security --offline=true "$u" 2>/dev/null | tail -n 1 | sed 's/^→ //')"
		done
	else
		bad "systemd-analyze verify (above)"
	fi
fi

# --- 7. layer rules ------------------------------------------------------------------------------
step "layer rules: defects a full build would show (scripts/check-layer-rules.py)"
if ! python3 "$TOP/scripts/check-layer-rules.py"; then
	bad "layer rules (above)"
fi

# --- 8. drawings ---------------------------------------------------------------------------------
step "drawings: every docs/*.svg rendered from its docs/*.dot (scripts/render-diagrams.sh --check)"
if "$TOP/scripts/render-diagrams.sh" --check; then
	ok "up to date"
else
	bad "stale drawings (above): run \`make diagrams\`"
fi

echo
if [ "$failures" -gt 0 ]; then
	echo "check-layer: $failures check(s) FAILED" >&2
	exit 1
fi
echo "check-layer: all checks passed"
