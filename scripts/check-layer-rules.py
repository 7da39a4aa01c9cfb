#!/usr/bin/env python3
"""check-layer-rules.py - rules of meta-rtpmgr that oelint-adv and the kas schema cannot see.

Each rule is a defect that a real `kas build`, `rauc install` or testimage run would show, checked
here without BitBake or any layer clone, in well under a second (scripts/check-layer.sh runs this
in `make test`, step layer-checks). Every rule prints "ok: ..." or "FAIL: ..." with the file and
the reason; the exit status is 1 if any rule fails.

Usage: scripts/check-layer-rules.py [RULE...]     (default: every rule; --list names them)
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

TOP = pathlib.Path(__file__).resolve().parent.parent
LAYER = TOP / "meta-rtpmgr"
sys.path.insert(0, str(LAYER / "lib"))

import rtpmgr.manifest  # noqa: E402  (the layer's own Python, as the recipes import it)
import rtpmgr.source  # noqa: E402

RULES = []


def rule(fn):
    RULES.append(fn)
    return fn


class Failed(Exception):
    pass


def read(rel):
    return (TOP / rel).read_text()


def layer_files(*patterns):
    out = []
    for pat in patterns:
        out += sorted(LAYER.rglob(pat))
    return out


def code_lines(path):
    """(lineno, line) of a BitBake file without its comments."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.lstrip().startswith("#"):
            yield n, line


def var_value(text, name):
    """The value of `NAME = "..."` / `NAME ??= "..."` (first assignment, continuation lines joined)."""
    m = re.search(r'^%s\s*(\?\?=|\?=|=|:=)\s*"((?:[^"\\]|\\.|\\\n)*)"' % re.escape(name), text, re.M)
    return m.group(2).replace("\\\n", " ") if m else None


# ---------------------------------------------------------------- 0. the layer's own Python
@rule
def layer_python_is_a_parse_dependency():
    """0: a class or recipe that imports the layer's Python (lib/rtpmgr) is re-parsed when that module changes."""
    checked = []
    for f in layer_files("*.bb", "*.bbappend", "*.bbclass", "*.inc"):
        text = f.read_text()
        for mod in sorted(set(re.findall(r"^\s*import (rtpmgr\.\w+)", text, re.M))):
            # BitBake's parse cache keys on the recipe's files only: without this, an edited
            # lib/rtpmgr module leaves every cached recipe with what the old code computed.
            if f"bb.parse.mark_dependency(d, {mod}.__file__)" not in text:
                raise Failed(f"{f.relative_to(TOP)}: imports {mod} but never calls "
                             f"bb.parse.mark_dependency(d, {mod}.__file__)")
            checked.append(f"{f.name}:{mod}")
    if not checked:
        raise Failed("no class imports lib/rtpmgr: the rule checks nothing (was the layer moved?)")
    return ", ".join(checked)


# ---------------------------------------------------------------- 1. reproducible sources
@rule
def sources_pinned():
    """1: no recipe follows a branch head (AUTOREV); the default source is the checked-out commit (nobranch=1)."""
    for f in layer_files("*.bb", "*.bbappend", "*.bbclass", "*.inc", "*.conf"):
        for n, line in code_lines(f):
            if "AUTOREV" in line:
                raise Failed(f"{f.relative_to(TOP)}:{n}: AUTOREV: a build must not depend on what a branch points at")
    cls = read("meta-rtpmgr/classes-recipe/rtpmgr_src.bbclass")
    uri = var_value(cls, "RTPMGR_GIT_URI") or ""
    if "nobranch=1" not in uri or "branch=${" in cls:
        raise Failed(f"rtpmgr_src.bbclass: default RTPMGR_GIT_URI {uri!r} must carry nobranch=1 and no branch=")
    return f"no AUTOREV; default source {uri}"


@rule
def sources_detached_checkout():
    """1: a clone at a detached HEAD without a local main builds that commit; a copy outside git is a clear error."""
    head = subprocess.run(["git", "-C", str(TOP), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "skipped: the repository is not a git checkout (%s)" % head.stderr.strip()
    head = head.stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = os.path.join(tmp, "rtpmgr")
        git = ["git", "-c", "safe.directory=*"]
        subprocess.run(git + ["clone", "--quiet", "--shared", "--no-checkout", str(TOP), clone], check=True)
        subprocess.run(git + ["-C", clone, "update-ref", "--no-deref", "HEAD", head], check=True)
        branches = subprocess.run(git + ["-C", clone, "for-each-ref", "--format=%(refname:short)", "refs/heads"],
                                  capture_output=True, text=True, check=True).stdout.split()
        if branches:
            subprocess.run(git + ["-C", clone, "branch", "--quiet", "-D"] + branches, check=True)
        got = rtpmgr.source.checked_out_commit(clone)
        if got != head:
            raise Failed(f"detached clone: default SRCREV {got}, checked out {head}")
        if not rtpmgr.source.reachable_from_a_ref(clone, head):
            raise Failed(f"detached clone: {head} is not reachable from refs/remotes: do_fetch would miss it")
        copy = os.path.join(tmp, "copy")
        os.mkdir(copy)
        try:
            rtpmgr.source.checked_out_commit(copy)
            raise Failed("a layer outside any git checkout got a commit instead of an error")
        except rtpmgr.source.SourceError as e:
            if "RTPMGR_GIT_URI" not in str(e):
                raise Failed(f"the error outside a checkout does not say what to set: {e}")
    return f"detached HEAD without local branches builds {head[:12]}; outside git: clear error"


# ---------------------------------------------------------------- 7. one install manifest
MANIFEST = LAYER / "files" / "install.manifest"


@rule
def install_manifest():
    """7: files/install.manifest is valid, lists every file of test/device, and its layer files exist."""
    try:
        entries = rtpmgr.manifest.read(MANIFEST)
    except rtpmgr.manifest.ManifestError as e:
        raise Failed(str(e))
    listed = {(e.kind, e.path) for e in entries}
    device = TOP / "test" / "device"
    wanted = [p for p in device.iterdir() if p.is_file()] + sorted((device / "kernel").glob("*.sh"))
    missing = [str(p.relative_to(TOP)) for p in wanted if ("repo", str(p.relative_to(TOP))) not in listed]
    if missing:
        raise Failed(f"not in {MANIFEST.relative_to(TOP)} (the image would lack them): {', '.join(missing)}")
    for e in entries:
        src = (LAYER if e.kind == "layer" else TOP) / e.path
        if not src.is_file():
            raise Failed(f"install.manifest:{e.lineno}: {e.kind}:{e.path} does not exist")
        # A script another one sources (". $dir/x") must be installed even without the execute bit.
        if e.kind == "repo" and e.mode[1] in "7531" and not os.access(src, os.X_OK):
            raise Failed(f"install.manifest:{e.lineno}: {e.path} is {e.mode} in the image but not executable in git")
    return f"{len(entries)} files; every file of test/device listed"


@rule
def install_manifest_drives_recipes():
    """7: every package of the manifest is a recipe that inherits rtpmgr_install and installs none of those files itself."""
    entries = rtpmgr.manifest.read(MANIFEST)
    packages = sorted({e.package for e in entries})
    for pkg in packages:
        # rtp-mgr-dev is a package of recipe rtp-mgr: the longest recipe name the package starts with.
        names = [r.name.split("_")[0] for r in layer_files("*.bb")]
        owner = max((n for n in names if pkg == n or pkg.startswith(n + "-")), key=len, default=None)
        recipes = layer_files(f"{owner}_*.bb") if owner else []
        if not recipes:
            raise Failed(f"install.manifest names package {pkg}, but the layer has no recipe it belongs to")
        text = recipes[0].read_text()
        if not re.search(r"^inherit .*\brtpmgr_install\b", text, re.M):
            raise Failed(f"{recipes[0].relative_to(TOP)} does not inherit rtpmgr_install: its manifest lines are ignored")
        for e in entries:
            if e.package == pkg and e.kind == "layer" and re.search(r"install .*%s" % re.escape(os.path.basename(e.path)), text):
                raise Failed(f"{recipes[0].relative_to(TOP)} installs {os.path.basename(e.path)} itself: "
                             "the manifest is the one place")
    harness = read("test/qemu/install-artifacts.sh")
    if "install.manifest" not in harness:
        raise Failed("test/qemu/install-artifacts.sh does not install from meta-rtpmgr/files/install.manifest")
    cls = read("meta-rtpmgr/classes-recipe/rtpmgr_install.bbclass")
    if not re.search(r'^do_install\[file-checksums\] \+= "\$\{RTPMGR_INSTALL_MANIFEST\}:True[ "]', cls, re.M):
        raise Failed("rtpmgr_install.bbclass: do_install does not hash install.manifest (file-checksums): "
                     "an edited manifest reuses the old package from sstate")
    return f"recipes {', '.join(packages)} and the QEMU harness install from it"


@rule
def etc_files_are_conffiles():
    """7: every file a package installs under /etc (init scripts aside) is in that package's CONFFILES."""
    entries = rtpmgr.manifest.read(MANIFEST)
    names = [r.name.split("_")[0] for r in layer_files("*.bb")]
    checked = 0
    for e in entries:
        if not e.dest.startswith("${sysconfdir}/") or e.dest.startswith("${sysconfdir}/init.d/"):
            continue
        owner = max((n for n in names if e.package == n or e.package.startswith(n + "-")), key=len, default=None)
        recipe = layer_files(f"{owner}_*.bb")[0]
        suffix = e.package[len(owner):]  # "" or "-metrics"
        # An explicit CONFFILES replaces the default (every /etc file): an opkg or rpm upgrade
        # would then overwrite a local edit of a file it leaves out, without a word.
        value = var_value(recipe.read_text(), "CONFFILES:${PN}" + suffix)
        if value is None:
            continue
        if e.dest not in value.split():
            raise Failed(f"{recipe.relative_to(TOP)}: CONFFILES:${{PN}}{suffix} lacks {e.dest} "
                         f"(install.manifest:{e.lineno}): an upgrade overwrites its local edits")
        checked += 1
    return f"{checked} /etc files of packages with an explicit CONFFILES are conffiles"


@rule
def rtp_rx_starts_where_the_feeder_does_not_receive():
    """7: rtp-rx is enabled and both init systems ask rtp-rx-wanted (an updated device's old feeder.toml has no [receive])."""
    recipe = read("meta-rtpmgr/recipes-apps/rtp-app/rtp-app_git.bb")
    for bad in ("INHIBIT_UPDATERCD_BBCLASS", 'SYSTEMD_AUTO_ENABLE:${PN} = "disable"'):
        if any(bad in line for _, line in code_lines(LAYER / "recipes-apps/rtp-app/rtp-app_git.bb")):
            raise Failed(f"rtp-app_git.bb: {bad}: a device updated from an image whose feeder.toml has no "
                         "[receive] keeps that file (rtpmgr-data) and would have no receiver")
    init = read("meta-rtpmgr/recipes-apps/rtp-app/files/rtp-rx.init")
    unit = read("meta-rtpmgr/recipes-apps/rtp-app/files/rtp-rx.service")
    if "rtp-rx-wanted" not in init or not re.search(r"^ExecCondition=@libexecdir@/rtpmgr/rtp-rx-wanted$", unit, re.M):
        raise Failed("rtp-rx.init and rtp-rx.service must both run rtp-rx-wanted before starting rtp_app")
    if "rtp-rx-wanted" not in read("meta-rtpmgr/files/install.manifest"):
        raise Failed("install.manifest does not install rtp-rx-wanted")
    with tempfile.TemporaryDirectory() as tmp:
        script = LAYER / "recipes-apps/rtp-app/files/rtp-rx-wanted"
        new, old = os.path.join(tmp, "new.toml"), os.path.join(tmp, "old.toml")
        pathlib.Path(new).write_text(read("meta-rtpmgr/recipes-apps/rtp-feeder/files/feeder.toml"))
        pathlib.Path(old).write_text("# before rtpmgr 2.2: no receive section\n# [receive]\nchannel = 0\n")
        def wanted(conf, force="0"):
            env = dict(os.environ, FEEDER_CONF=conf, RTP_RX_FORCE=force)
            return subprocess.run(["sh", str(script)], env=env, capture_output=True).returncode == 0
        if wanted(new) or not wanted(old) or not wanted(new, "1"):
            raise Failed("rtp-rx-wanted: want idle with the shipped feeder.toml, running with one without "
                         "[receive] and with RTP_RX_FORCE=1")
    return "enabled; idle with the shipped feeder.toml, receives with an older one or when forced"


# ---------------------------------------------------------------- 2. RAUC keyring path
class FakeData:
    """Just enough of BitBake's datastore for ${@...} expressions of this layer's recipes."""

    def __init__(self, values):
        self.values = values

    def getVar(self, name, expand=True):  # noqa: N802 (BitBake's API)
        value = self.values.get(name)
        return expand_vars(value, self.values) if (value is not None and expand) else value


def expand_vars(text, values, depth=0):
    """Expand ${VAR} and ${@python} like BitBake does, from values (recipe text assignments)."""
    if depth > 20:
        raise Failed(f"recursive expansion of {text!r}")
    out = re.sub(r"\$\{@(.+?)\}", lambda m: str(eval(m.group(1), {"d": FakeData(values), "bb": None})), text)
    out = re.sub(r"\$\{([A-Za-z0-9_:+-]+)\}",
                 lambda m: expand_vars(values[m.group(1)], values, depth + 1) if m.group(1) in values else m.group(0), out)
    return out


def bitbake_file_unpack_path(workdir, uri_path):
    """Where scarthgap's do_unpack copies a file:// entry (bb.fetch2.FetchMethod.unpack): the URL's path
    without the leading '/', below the unpack root; an absolute path keeps all its directories."""
    return workdir + "/" + uri_path.rstrip("/").lstrip("/")


@rule
def rauc_keyring_path():
    """2: rtpmgr-rauc-conf installs the keyring from where do_unpack puts RAUC_KEYRING_FILE (absolute or relative)."""
    recipes = layer_files("rtpmgr-rauc-conf_*.bb")
    if len(recipes) != 1:
        raise Failed(f"expected one rtpmgr-rauc-conf recipe, found {[str(r) for r in recipes]}")
    text = recipes[0].read_text()
    m = re.search(r"^\s*install -m \d+ (.+?)\s+\$\{D\}\$\{sysconfdir\}/rauc/ca\.cert\.pem\s*$", text, re.M)
    if not m:
        raise Failed(f"{recipes[0].relative_to(TOP)}: no install line for /etc/rauc/ca.cert.pem")
    names = set(re.findall(r"\$\{([A-Z0-9_]+)\}", m.group(1)))
    for case in ["/home/builder/build/openssl-ca/dev/ca.cert.pem", "keys/ca.cert.pem", "ca.cert.pem"]:
        values = {"WORKDIR": "/W", "RAUC_KEYRING_FILE": case}
        for name in names - set(values):
            v = var_value(text, name)
            if v is not None:
                values[name] = v
        word = expand_vars(m.group(1), values)
        got = subprocess.run(["sh", "-c", 'printf %s "' + word + '"'], capture_output=True, text=True).stdout
        want = bitbake_file_unpack_path("/W", case)
        if got != want:
            raise Failed(f"RAUC_KEYRING_FILE={case}: do_install reads {got}, do_unpack wrote {want}")
    return "absolute and relative RAUC_KEYRING_FILE: installed from where do_unpack put it"


# ---------------------------------------------------------------- 3. RAUC data directory
@rule
def rauc_data_directory():
    """3: RAUC keeps its status in a data-directory it creates, not a statusfile= in a directory nobody creates."""
    conf = read("meta-rtpmgr/dynamic-layers/rauc/recipes-core/rauc/files/system.conf")
    keys = dict(re.findall(r"^([a-z-]+)=(.*)$", conf.split("[keyring]")[0], re.M))
    if "statusfile" in keys:
        raise Failed(f"system.conf: statusfile={keys['statusfile']}: RAUC does not create its directory, "
                     "the first install fails; use data-directory=")
    if "data-directory" not in keys:
        raise Failed("system.conf: no data-directory= (RAUC would keep the slot status per slot, lost with each update)")
    # The OTA test must meet /data as a new box has it: without RAUC's directory.
    ota = read("test/ota/build-image.sh")
    if re.search(r'mkdir -p [^\n]*"\$dt/rauc"', ota):
        raise Failed("test/ota/build-image.sh pre-creates /data/rauc, which hides a missing directory on the product")
    return f"data-directory={keys['data-directory']}; the OTA test starts without it"


# ---------------------------------------------------------------- 6. systemd without sysvinit
@rule
def systemd_units_exec_paths():
    """6: no unit runs anything from /etc (systemd.bbclass deletes /etc/init.d without sysvinit); helpers come from the manifest."""
    installed = {rtpmgr.manifest.expand_default(e.dest): e for e in rtpmgr.manifest.read(MANIFEST)}
    units = layer_files("*.service")
    checked = 0
    for unit in units:
        for n, line in enumerate(unit.read_text().splitlines(), 1):
            m = re.match(r"^Exec[A-Za-z]*=[-@:+!]*(\S+)", line)
            if not m:
                continue
            # @libexecdir@ and the like: do_install replaces them (systemd_units_use_dir_placeholders).
            path = re.sub(r"@(\w+)@", lambda v: rtpmgr.manifest.DEFAULT_PATHS.get(v.group(1), v.group(0)), m.group(1))
            where = f"{unit.relative_to(TOP)}:{n}"
            if path.startswith("/etc/"):
                raise Failed(f"{where}: {path}: /etc/init.d is removed when the distro has no sysvinit; "
                             "install the helper to ${libexecdir} (files/install.manifest)")
            if path.startswith(("/usr/libexec/", "/usr/lib/", "/lib/")) and path not in installed:
                raise Failed(f"{where}: {path} is installed by no line of files/install.manifest")
            checked += 1
    # rtpmgr-data.service and any other unit outside recipes-apps (scripts/check-layer.sh verifies those).
    others = [u for u in units if "recipes-apps" not in u.parts]
    if others and shutil.which("systemd-analyze"):
        with tempfile.TemporaryDirectory() as tmp:
            for u in others:
                text = re.sub(r"^(Exec[A-Za-z]*=)\S+", r"\1/bin/true", u.read_text(), flags=re.M)
                pathlib.Path(tmp, u.name).write_text(text)
            r = subprocess.run(["systemd-analyze", "verify"] + [str(pathlib.Path(tmp, u.name)) for u in others],
                               capture_output=True, text=True)
            # A unit that other units name in Before=/After= but the host lacks is not an error here.
            problems = [l for l in (r.stdout + r.stderr).splitlines() if l.strip() and "not found" not in l]
            if r.returncode != 0 or problems:
                raise Failed("systemd-analyze verify: " + "; ".join(problems or [r.stderr.strip()]))
    kas = read("kas/systemd.yml")
    if not re.search(r'^\s*INIT_MANAGER = "systemd"', kas, re.M):
        raise Failed('kas/systemd.yml does not set INIT_MANAGER = "systemd"')
    return f"{checked} Exec lines in {len(units)} units; kas/systemd.yml switches to systemd"


# ---------------------------------------------------------------- 8. wic after the boot files
@rule
def wic_waits_for_boot_files():
    """8: do_image_wic depends on the do_deploy of every layer recipe that deploys one of the A/B image's boot files."""
    inc = read("meta-rtpmgr/recipes-core/images/rtpmgr-image-ab.inc")
    boot_files = set((var_value(inc, "RTPMGR_AB_BOOT_FILES") or "").split())
    if not boot_files:
        raise Failed("rtpmgr-image-ab.inc: no RTPMGR_AB_BOOT_FILES")
    depends = " ".join(re.findall(r'^do_image_wic\[depends\]\s*\+?=\s*"([^"]*)"', inc, re.M)).split()
    found = 0
    for recipe in layer_files("*.bb"):
        text = recipe.read_text()
        deploy = re.search(r"^do_deploy\(\)\s*\{(.*?)^\}", text, re.M | re.S)
        if not deploy:
            continue
        names = set(re.findall(r"/([A-Za-z0-9_.-]+)(?=\s|$)", deploy.group(1))) & boot_files
        if not names:
            continue
        found += 1
        pn = recipe.name.split("_")[0].removesuffix(".bb")
        if f"{pn}:do_deploy" not in depends:
            raise Failed(f"{recipe.relative_to(TOP)} deploys {', '.join(sorted(names))} (IMAGE_BOOT_FILES), but "
                         f"rtpmgr-image-ab.inc has no do_image_wic[depends] on {pn}:do_deploy: racy builds, "
                         "`bitbake -c image_wic` fails")
    if not found:
        raise Failed(f"no layer recipe deploys any of {sorted(boot_files)}")
    return f"do_image_wic[depends] = {' '.join(depends)}"


# ---------------------------------------------------------------- 9. layer-owned A/B feature
@rule
def rauc_parts_gated():
    """9: nothing outside dynamic-layers/rauc switches on the generic "rauc" feature; RAUC recipes live in dynamic-layers/rauc."""
    conf = read("meta-rtpmgr/conf/layer.conf")
    if not re.search(r"rauc:\$\{LAYERDIR\}/dynamic-layers/rauc/", conf):
        raise Failed("layer.conf: no BBFILES_DYNAMIC entry for dynamic-layers/rauc")
    for f in layer_files("*.bb", "*.bbappend", "*.bbclass", "*.inc"):
        rel = f.relative_to(LAYER)
        in_rauc = rel.parts[:2] == ("dynamic-layers", "rauc")
        for n, line in code_lines(f):
            if re.search(r"""contains\(\s*['"]DISTRO_FEATURES['"]\s*,\s*['"]rauc['"]""", line) or \
                    re.match(r'\s*REQUIRED_DISTRO_FEATURES\s*\+?=\s*"[^"]*\brauc\b(?!-)', line) and not in_rauc:
                raise Failed(f"meta-rtpmgr/{rel}:{n}: switched on by the generic 'rauc' feature: any RAUC product "
                             "adding this layer would get it; use the layer's own 'rtpmgr-ab'")
            if not in_rauc and re.match(r"\s*inherit\b.*\bbundle\b", line):
                raise Failed(f"meta-rtpmgr/{rel}:{n}: inherits meta-rauc's bundle class outside dynamic-layers/rauc")
    rauc_dir = LAYER / "dynamic-layers" / "rauc"
    recipes = sorted(p.name for p in rauc_dir.rglob("*.bb")) if rauc_dir.is_dir() else []
    if not recipes:
        raise Failed("dynamic-layers/rauc/ holds no recipe: layer.conf points at an empty folder")
    return f"dynamic-layers/rauc: {', '.join(recipes)}; A/B parts gated on rtpmgr-ab"


# ---------------------------------------------------------------- 10. data, logs, versions, read-only
@rule
def fstab_data_nofail():
    """10: the A/B fstab lines carry nofail: a missing or broken partition must not stop the boot."""
    inc = read("meta-rtpmgr/recipes-bsp/base-files/base-files_rtpmgr-ab.inc")
    lines = re.findall(r"printf '(LABEL=[^']*)'", inc)
    if not lines:
        raise Failed("base-files_rtpmgr-ab.inc writes no fstab line")
    for line in lines:
        fields = line.replace("\\t", "\t").split("\t")
        if len(fields) < 4 or "nofail" not in fields[3].split(","):
            raise Failed(f"fstab line {line!r}: options without nofail")
    return f"{len(lines)} fstab lines with nofail"


@rule
def service_logs_persist():
    """10: the services log below /var/log/rtpmgr (on /data through rtpmgr-data), not into the tmpfs /var/log."""
    data = read("meta-rtpmgr/recipes-bsp/rtpmgr-data/files/rtpmgr-data.init")
    if "/rtpmgr" not in data or 'bind "$DATA/log" "$logdir"' not in data:
        raise Failed("rtpmgr-data no longer binds /data/rtpmgr/log over /var/log/rtpmgr")
    for init in layer_files("*.init"):
        if "recipes-apps" not in init.parts:
            continue
        m = re.search(r"^RTP_LOG=(\S+)", init.read_text(), re.M)
        if not m or not m.group(1).startswith("/var/log/rtpmgr/"):
            raise Failed(f"{init.relative_to(TOP)}: RTP_LOG={m.group(1) if m else '?'} is in the tmpfs /var/log, "
                         "lost at every reboot; use /var/log/rtpmgr/")
        unit = init.with_suffix(".service")
        out = re.search(r"^StandardOutput=append:(\S+)", unit.read_text(), re.M)
        if not out or out.group(1) != m.group(1).replace("$NAME", unit.stem):
            raise Failed(f"{unit.relative_to(TOP)}: StandardOutput is not append:{m.group(1)} (the journal is volatile)")
    for test in ["test/device/stream-check", "test/device/stream-lib.sh"]:
        if re.search(r"/var/log/(\$svc|rtp-)", read(test)):
            raise Failed(f"{test} reads the services' logs from /var/log instead of /var/log/rtpmgr")
    return "rtp-rx and rtp-feeder log to /var/log/rtpmgr under both init systems"


@rule
def bundle_version():
    """10: the RAUC bundle is versioned by rtpmgr (version + commit), not DISTRO_VERSION."""
    text = layer_files("rtpmgr-bundle.bb")[0].read_text()
    v = var_value(text, "RAUC_BUNDLE_VERSION") or ""
    if "DISTRO_VERSION" in v or "RTPMGR_SRCREV" not in v:
        raise Failed(f"RAUC_BUNDLE_VERSION = {v!r}: every bundle of one distro release would carry the same version")
    return f"RAUC_BUNDLE_VERSION = {v}"


@rule
def read_only_rootfs_option():
    """10: read-only-rootfs is an image option, and the OTA scenarios install and boot with / read-only."""
    image = read("meta-rtpmgr/recipes-core/images/rtpmgr-image.bb")
    if not re.search(r"^IMAGE_FEATURES \+= .*read-only-rootfs.*RTPMGR_READ_ONLY_ROOTFS", image, re.M):
        raise Failed("rtpmgr-image.bb: no read-only-rootfs IMAGE_FEATURE switched by RTPMGR_READ_ONLY_ROOTFS")
    if "OTA-ROOTFS: ro" not in read("test/ota/run-ota-tests.sh") or "ROOTFS:" not in read("test/ota/guest/ota-agent"):
        raise Failed("the OTA scenarios do not check that the root filesystem is read-only during updates")
    return "RTPMGR_READ_ONLY_ROOTFS switches read-only-rootfs; OTA scenario 1 checks / is read-only"


# ---------------------------------------------------------------- 5. qemuarm64 A/B boots
AB_INC = "meta-rtpmgr/recipes-core/images/rtpmgr-image-ab.inc"


def kernel_cfg_has(options):
    cfg = read("meta-rtpmgr/recipes-kernel/linux/files/rtpmgr-rauc.cfg")
    return [o for o in options if f"{o}=y" not in cfg]


@rule
def qemu_ab_bootable():
    """5: the qemuarm64 A/B image has no empty kernel-devicetree, builds U-Boot and boots it under runqemu."""
    inc = read(AB_INC)
    for n, line in enumerate(inc.splitlines(), 1):
        if "kernel-devicetree" in line and not line.lstrip().startswith("#") and "KERNEL_DEVICETREE" not in line:
            raise Failed(f"{AB_INC}:{n}: kernel-devicetree unconditionally: empty (no KERNEL_DEVICETREE) on "
                         "qemuarm64 and not ALLOW_EMPTY, so do_rootfs fails")
    wanted = {r"EXTRA_IMAGEDEPENDS:append:qemuall = \" u-boot\"": "U-Boot is not built for qemuarm64",
              r'QB_DEFAULT_BIOS:qemuall = "u-boot.bin"': "runqemu does not start U-Boot",
              r'QB_DEFAULT_KERNEL:qemuall = "none"': "runqemu passes -kernel and bypasses boot.scr",
              r'QB_DEFAULT_FSTYPE:qemuall = "wic"': "runqemu boots the ext4 slot image, not the A/B disk",
              # image.bbclass rm_tmp_images removes a .wic not listed; runqemu/testimage need it
              r'IMAGE_FSTYPES:append:qemuall = " wic"': "only wic.bz2 is kept: runqemu and testimage find no .wic"}
    for pattern, why in wanted.items():
        if not re.search("^" + pattern, inc, re.M):
            raise Failed(f"{AB_INC}: missing {pattern.replace(chr(92), '')}: {why}")
    if "linux-rtpmgr-ab.inc" not in read("meta-rtpmgr/recipes-kernel/linux/linux-yocto_%.bbappend"):
        raise Failed("linux-yocto gets no RAUC kernel options")
    missing = kernel_cfg_has(["CONFIG_DM_VERITY", "CONFIG_SQUASHFS", "CONFIG_BLK_DEV_LOOP"])
    if missing:
        raise Failed(f"rtpmgr-rauc.cfg lacks {missing}: verity bundles cannot be mounted")
    script = read("meta-rtpmgr/recipes-bsp/u-boot/files/boot.cmd.in")
    ucfg = read("meta-rtpmgr/recipes-bsp/u-boot/files/rtpmgr-ab-uboot.cfg")
    if "fatwrite" in script and "CONFIG_FAT_WRITE=y" not in ucfg:
        raise Failed("boot.cmd.in uses fatwrite, rtpmgr-ab-uboot.cfg does not enable CONFIG_FAT_WRITE")
    if "u-boot-rtpmgr-ab.inc" not in read("meta-rtpmgr/recipes-bsp/u-boot/u-boot_%.bbappend"):
        raise Failed("u-boot gets no rtpmgr-ab-uboot.cfg")
    return "no empty kernel-devicetree; U-Boot built and run by runqemu; kernel and U-Boot options set"


# ---------------------------------------------------------------- 4. Raspberry Pi A/B boots
# RAM and U-Boot's fixed load addresses of the machines the layer supports (U-Boot's
# include/configs/qemu-arm.h and rpi.h defaults): boot.scr's scratch must be in RAM and clear of them.
MACHINES = {
    # name: (override, RAM start, RAM end, busy ranges [start, end))
    "qemuarm64": ("qemuall", 0x40000000, 0x40000000 + (1 << 30),
                  [(0x40000000, 0x40100000), (0x40200000, 0x40210000), (0x40400000, 0x44000000),
                   (0x44000000, 0x48000000)]),
    # 1 GiB Pi 4 with the GPU's 76 MiB at the top.
    "raspberrypi4-64": ("rpi", 0x0, 0x3B400000,
                        [(0x00000000, 0x00080000), (0x00080000, 0x02400000), (0x02400000, 0x02410000),
                         (0x02500000, 0x02510000), (0x02600000, 0x02700000), (0x02700000, 0x06700000)]),
}


@rule
def raspberrypi_ab_boots():
    """4: Pi + RAUC keeps the firmware's boot files, boots U-Boot with one boot.scr, has RAUC's kernel options, and a scratch address in RAM."""
    for f in [TOP / "kas.yml"] + sorted((TOP / "kas").glob("*.yml")) + layer_files("*.inc", "*.bb", "*.bbappend", "*.conf"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.match(r'\s*IMAGE_BOOT_FILES(:pn-[\w-]+)?\s*\??=', line):
                raise Failed(f"{f.relative_to(TOP)}:{n}: IMAGE_BOOT_FILES replaced: the board's firmware, device "
                             "trees and overlays would be dropped; append instead")
    ab = read("meta-rtpmgr/conf/include/rtpmgr-ab.inc")
    for pattern, why in {r'RPI_USE_U_BOOT = "1"': "the Pi firmware would start the kernel, not U-Boot and boot.scr",
                         r'PREFERRED_PROVIDER_u-boot-default-script = "rtpmgr-boot-script"':
                             "rpi-u-boot-scr's boot.scr would collide with rtpmgr's"}.items():
        if not re.search("^" + pattern, ab, re.M):
            raise Failed(f"conf/include/rtpmgr-ab.inc: missing {pattern}: {why}")
    if not re.search(r'^PROVIDES \+= "u-boot-default-script"', read("meta-rtpmgr/recipes-bsp/u-boot/rtpmgr-boot-script_1.0.bb"), re.M):
        raise Failed("rtpmgr-boot-script does not provide u-boot-default-script")
    rpi_files = re.search(r'^RTPMGR_AB_BOOT_FILES:rpi \?= "([^"]*)"', read(AB_INC), re.M)
    if not rpi_files or "boot.scr" in rpi_files.group(1).split():
        raise Failed("the Pi's boot partition would get boot.scr twice (meta-raspberrypi lists it already)")
    if not re.search(r"raspberrypi:\$\{LAYERDIR\}/dynamic-layers/raspberrypi/", read("meta-rtpmgr/conf/layer.conf")):
        raise Failed("layer.conf: no BBFILES_DYNAMIC entry for dynamic-layers/raspberrypi")
    bbappend = LAYER / "dynamic-layers/raspberrypi/recipes-kernel/linux/linux-raspberrypi_%.bbappend"
    if not bbappend.is_file() or not any(f.name == "linux-rtpmgr-ab.inc" for f in bitbake_requires(bbappend)):
        raise Failed("linux-raspberrypi gets no RAUC kernel options (dm-verity, squashfs, loop)")
    layout = read("meta-rtpmgr/recipes-bsp/u-boot/rtpmgr-ab-layout.inc")
    default = re.search(r'^RTPMGR_BOOT_SCRATCH_ADDR \?\?= "(0x[0-9a-fA-F]+)"', layout, re.M)
    for machine, (override, start, end, busy) in MACHINES.items():
        m = re.search(r'^RTPMGR_BOOT_SCRATCH_ADDR:%s \?\?= "(0x[0-9a-fA-F]+)"' % override, layout, re.M) or default
        if not m:
            raise Failed("rtpmgr-ab-layout.inc: no RTPMGR_BOOT_SCRATCH_ADDR")
        addr = int(m.group(1), 16)
        if not (start <= addr and addr + 0x10000 <= end):
            raise Failed(f"{machine}: RTPMGR_BOOT_SCRATCH_ADDR {m.group(1)} is outside its RAM "
                         f"[{start:#x}, {end:#x}): boot.scr would write the boot state into nothing")
        for b0, b1 in busy:
            if addr < b1 and b0 < addr + 0x10000:
                raise Failed(f"{machine}: RTPMGR_BOOT_SCRATCH_ADDR {m.group(1)} overlaps U-Boot's [{b0:#x}, {b1:#x})")
    return "boot files appended, RPI_USE_U_BOOT, one boot.scr, RAUC kernel options, scratch in RAM on " + \
        ", ".join(MACHINES)


# ---------------------------------------------------------------- product expectations
@rule
def product_image_lean():
    """product: rtpmgr-image carries no test suite, SSH server or login shortcuts; rtpmgr-image-dev adds them."""
    product = read("meta-rtpmgr/recipes-core/images/rtpmgr-image.bb")
    body = "\n".join(l for _, l in code_lines(LAYER / "recipes-core/images/rtpmgr-image.bb"))
    for word in ["rtpmgr-tests", "ssh-server", "dropbear", "debug-tweaks", "allow-empty-password", "empty-root-password"]:
        if word in body:
            raise Failed(f"rtpmgr-image.bb (the product) has {word}: test-only, it belongs in rtpmgr-image-dev")
    dev = read("meta-rtpmgr/recipes-core/images/rtpmgr-image-dev.bb")
    if "require rtpmgr-image.bb" not in dev or "rtpmgr-tests" not in dev or "ssh-server-dropbear" not in dev:
        raise Failed("rtpmgr-image-dev.bb must require rtpmgr-image.bb and add rtpmgr-tests and ssh-server-dropbear")
    if not re.search(r"^target: rtpmgr-image-dev", read("kas/testimage.yml"), re.M):
        raise Failed("kas/testimage.yml does not test rtpmgr-image-dev")
    return f"product {len(product.splitlines())} lines without test packages; rtpmgr-image-dev adds them"


@rule
def rust_licences_and_paths():
    """product: Rust recipes list their crates' licences (from Cargo.lock), remap build paths, and the UAPI header ships in rtp-mgr-dev."""
    crates = read("meta-rtpmgr/classes-recipe/rtpmgr_crates.bbclass")
    flags = dict(re.findall(r'^RTPMGR_CRATES_LICENSE\[([\w.+-]+)\] = "([^"]*)"', crates, re.M))
    for recipe in layer_files("*.bb"):
        text = recipe.read_text()
        if not re.search(r"^inherit .*\brtpmgr_crates\b", text, re.M):
            continue
        pn = recipe.name.split("_")[0]
        lic = var_value(text, "LICENSE") or ""
        if "RTPMGR_CRATES_LICENSE" not in lic or not flags.get(pn):
            raise Failed(f"{recipe.relative_to(TOP)}: LICENSE {lic!r} does not name the licences of the crates it "
                         f"links (RTPMGR_CRATES_LICENSE[{pn}] from scripts/gen-crates-inc.py)")
    offline = read("meta-rtpmgr/classes-recipe/cargo_bin_offline.bbclass")
    if "--remap-path-prefix=${WORKDIR}=" not in offline:
        raise Failed("cargo_bin_offline.bbclass: no --remap-path-prefix for WORKDIR: build paths in binaries (QA buildpaths)")
    dev = [e for e in rtpmgr.manifest.read(MANIFEST) if e.path == "include/rtp_mgr_ioctl.h"]
    if not dev or not dev[0].package.endswith("-dev") or not dev[0].dest.startswith("${includedir}/"):
        raise Failed("include/rtp_mgr_ioctl.h is not installed to ${includedir} by a -dev package (SDK)")
    return f"crate licences for {', '.join(sorted(flags))}; --remap-path-prefix; {dev[0].package} has the UAPI header"


@rule
def offline_and_layer_metadata():
    """product: kas/offline.yml keeps uninative; layer.conf recommends rauc and raspberrypi; the README says how to set the maintainer address."""
    offline = "\n".join(l for l in read("kas/offline.yml").splitlines() if not l.lstrip().startswith("#"))
    if "uninative" in offline:
        raise Failed("kas/offline.yml changes uninative: every native signature would differ from the online build's")
    conf = read("meta-rtpmgr/conf/layer.conf")
    if not re.search(r'^LAYERRECOMMENDS_rtpmgr = "[^"]*\brauc\b[^"]*\braspberrypi\b', conf, re.M):
        raise Failed("layer.conf: LAYERRECOMMENDS_rtpmgr does not name rauc and raspberrypi")
    readme = read("meta-rtpmgr/README.md")
    if not re.search(r"^Maintainer: .+<[^@>]+@[^>]+>", readme, re.M) or ".example" in readme and "placeholder" not in readme:
        raise Failed("README.md: no maintainer address, or a placeholder without saying how to set it")
    return "uninative kept offline; LAYERRECOMMENDS rauc raspberrypi; maintainer line explained"


# ---------------------------------------------------------------- review of the layer by a Yocto maintainer
# The rules below each guard one finding of that review; oelint-adv and `bitbake -p/-g` pass without them.

# Variables BitBake and oe-core already keep out of the signatures (bitbake.conf, BB_HASHEXCLUDE_COMMON)
# or that never reach a task (BitBake's own layer settings).
BITBAKE_PATH_VARS = {"BBPATH", "BBFILES", "BBFILES_DYNAMIC", "FILESEXTRAPATHS", "THISDIR", "FILESPATH", "TOPDIR"}


@rule
def host_paths_not_hashed():
    """review a: no host path of the checkout enters a task signature: the layer's path variables are in BB_BASEHASH_IGNORE_VARS (:append), nothing copies them with :=."""
    conf = read("meta-rtpmgr/conf/layer.conf")
    # Variables layer.conf sets from LAYERDIR: they hold where this checkout is on the build host.
    path_vars = {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_]+)\s*:?=\s*\"[^\"]*\$\{(?:@[^}]*)?LAYERDIR", conf, re.M)
                 if not m.group(1).startswith("BBFILE")} - BITBAKE_PATH_VARS
    if not path_vars:
        raise Failed("layer.conf sets no variable from LAYERDIR: the rule no longer knows what to look for")
    ignored = set()
    for m in re.finditer(r"^BB_BASEHASH_IGNORE_VARS(\S*)\s*(\S*=)\s*\"([^\"]*)\"", conf, re.M):
        if m.group(1) != ":append":
            # layer.conf is parsed before bitbake.conf, whose "?=" is skipped once the variable is set.
            raise Failed(f"layer.conf: BB_BASEHASH_IGNORE_VARS{m.group(1)} {m.group(2)}: only :append keeps "
                         "bitbake.conf's defaults (it sets them with ?= after every layer.conf)")
        ignored |= set(m.group(3).split())
    missing = sorted(path_vars - ignored)
    if missing:
        raise Failed(f"layer.conf: {', '.join(missing)} hold the checkout's absolute path and are not in "
                     "BB_BASEHASH_IGNORE_VARS: every task that reads them (do_fetch through SRC_URI) gets "
                     "another signature in every workspace, so no sstate is shared")
    # A copy made with := holds the expanded path in a variable nobody ignores.
    watched = path_vars | {"LAYERDIR", "THISDIR", "TOPDIR", "COREBASE", "WORKDIR"}
    for f in layer_files("*.bb", "*.bbappend", "*.bbclass", "*.inc", "*.conf"):
        for n, line in code_lines(f):
            m = re.match(r"\s*([A-Za-z0-9_:${}-]+)\s*:=\s*\"(.*)\"", line)
            if not m or m.group(1) in path_vars or m.group(1).split(":")[0] in BITBAKE_PATH_VARS:
                continue
            used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", m.group(2))) & watched
            if used:
                raise Failed(f"{f.relative_to(TOP)}:{n}: {m.group(1)} := expands {', '.join(sorted(used))} at "
                             "parse time: the host path is then in its value and in every signature that uses it")
    return f"{', '.join(sorted(path_vars))} ignored by the signatures (:append); no := copies of host paths"


@rule
def module_virtual_provide_once():
    """review b: a module recipe does not RPROVIDE kernel-module-<name> itself: kernel-module-split's package of the .ko already does."""
    checked = []
    for recipe in layer_files("*.bb", "*.bbappend"):
        text = recipe.read_text()
        if not re.search(r"^inherit .*\b(module|kernel-module-split)\b", text, re.M):
            continue
        checked.append(recipe.stem.split("_")[0])
        # Without KERNEL_MODULE_PROVIDE_VIRTUAL = "0" kernel-module-split.bbclass sets
        # RPROVIDES:kernel-module-<name>-<kver> = kernel-module-<name> for every module it splits.
        if re.search(r'^KERNEL_MODULE_PROVIDE_VIRTUAL\s*=\s*"0"', text, re.M):
            continue
        for n, line in code_lines(recipe):
            m = re.match(r"\s*RPROVIDES[^=]*=\s*\"([^\"]*)\"", line)
            if m and re.search(r"\bkernel-module-[\w-]+", m.group(1)):
                raise Failed(f"{recipe.relative_to(TOP)}:{n}: RPROVIDES {m.group(1).strip()}: kernel-module-split "
                             "already provides it from the module's package (KERNEL_MODULE_PROVIDE_VIRTUAL): two providers")
    if not checked:
        raise Failed("no recipe inherits module: the rule no longer finds the module recipe")
    return f"{', '.join(checked)}: the virtual kernel-module-* provide comes from kernel-module-split only"


@rule
def selftest_without_werror():
    """review c: the C selftest is built without -Werror under OE's CFLAGS (the recipe passes WERROR=, the Makefile honours it)."""
    makefile = read("test/device/kernel/Makefile")
    werror = [l for l in makefile.splitlines() if "-Werror" in l and not l.lstrip().startswith("#")]
    if any(not re.match(r"\s*WERROR\s*\?=", l) for l in werror):
        raise Failed("test/device/kernel/Makefile adds -Werror outside `WERROR ?=`: no recipe can drop it")
    recipe = layer_files("rtpmgr-tests_*.bb")[0]
    calls = [(n, l) for n, l in code_lines(recipe) if "oe_runmake" in l and "test/device/kernel" in l]
    if not calls:
        raise Failed(f"{recipe.relative_to(TOP)}: no oe_runmake of test/device/kernel: the rule no longer finds the build")
    for n, l in calls:
        if not re.search(r"(^|\s)WERROR=(\s|$)", l):
            raise Failed(f"{recipe.relative_to(TOP)}:{n}: the selftest is built with the Makefile's -Werror: a warning "
                         "of a newer compiler under OE's CFLAGS fails the product build; pass WERROR=")
    return "rtpmgr-tests builds test/device/kernel with WERROR= (the Makefile's -Werror only through WERROR ?=)"


def bitbake_requires(path, seen=None):
    """path and every file it requires/includes (through BBPATH: the layer root, or the file's directory),
    following ${@bb.utils.contains(..., 'file', '', d)} gates as if the feature were on."""
    seen = seen if seen is not None else []
    seen.append(path)
    for m in re.finditer(r"^(?:require|include)\s+(.+)$", path.read_text(), re.M):
        arg = m.group(1).strip()
        gated = re.search(r"contains\([^,]+,[^,]+,\s*'([^']+)'", arg)
        name = gated.group(1) if gated else arg
        for cand in (LAYER / name, path.parent / name):
            if cand.is_file() and cand not in seen:
                bitbake_requires(cand, seen)
                break
    return seen


# kernel-devicetree.bbclass: KERNEL_DTBDEST defaults to KERNEL_IMAGEDEST ("boot"); KERNEL_DTBVENDORED
# to "0" (kernel.bbclass), which installs every dtb flat, under its basename. U-Boot's rpi board code
# (board/raspberrypi/rpi/rpi.c, DTB_DIR) sets fdtfile to "broadcom/<name>.dtb" on arm64.
RPI_UBOOT_FDTFILE = "broadcom/bcm2711-rpi-4-b.dtb"


@rule
def rpi_devicetree_path():
    """review d (after the Yocto review): a Raspberry Pi boots the firmware's device tree (${fdt_addr}, with
    config.txt's overlays), never a tree loaded from the slot, and no layer file changes where the kernel installs
    its device trees."""
    script = read("meta-rtpmgr/recipes-bsp/u-boot/files/boot.cmd.in")
    if re.search(r"^\s*(if )?load \S+ \S+ \S+ \S*\$\{fdtfile\}", script, re.M):
        raise Failed("boot.cmd.in loads ${fdtfile} from the slot: on a Pi that tree lacks config.txt's dtoverlay= "
                     "lines (vc4-kms-v3d), which the firmware applies to its own tree only; boot ${fdt_addr}")
    if not re.search(r"^\s*setenv ota_fdt \$\{fdt_addr\}\s*$", script, re.M):
        raise Failed("boot.cmd.in does not boot ${fdt_addr} (the firmware's tree) when the board sets it")
    m = re.search(r"^booti .*\$\{ota_fdt\}\s*$", script, re.M)
    if not m:
        raise Failed("boot.cmd.in's booti does not pass ${ota_fdt}")
    for f in LAYER.rglob("*"):
        if f.is_file() and f.suffix in (".bb", ".bbappend", ".inc", ".conf") and \
                re.search(r"^KERNEL_DTBVENDORED", f.read_text(errors="replace"), re.M):
            raise Failed(f"{f.relative_to(TOP)} sets KERNEL_DTBVENDORED: the slot's tree is not what a Pi boots")
    uboot = read("meta-rtpmgr/recipes-bsp/u-boot/u-boot-rtpmgr-ab.inc")
    if not re.search(r"do_install:append:rpi\(\) \{[^}]*rm -f \$\{D\}\$\{sysconfdir\}/fw_env\.config", uboot):
        raise Failed("u-boot-rtpmgr-ab.inc does not drop meta-raspberrypi's single-copy fw_env.config from u-boot-env: "
                     "it would clash with rtpmgr-boot-script's A/B one at do_rootfs")
    return ("boot.scr boots the firmware's device tree (${fdt_addr}) where there is one, else U-Boot's own; "
            "u-boot-env carries no second fw_env.config")


# The Linux targets the layer is built for: qemuarm64 and raspberrypi4-64 (aarch64), 32-bit arm and x86-64.
REQUIRED_CRATE_TARGETS = {"aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf", "x86_64-unknown-linux-gnu"}


@rule
def crate_licences_every_target():
    """review e: the crates' licences are computed for every target the layer builds for, not only aarch64."""
    spec = __import__("importlib.util").util.spec_from_file_location("gen_crates_inc", TOP / "scripts/gen-crates-inc.py")
    gen = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    targets = set(getattr(gen, "TARGETS", [getattr(gen, "TARGET", "")]))
    missing = sorted(REQUIRED_CRATE_TARGETS - targets)
    if missing:
        raise Failed(f"scripts/gen-crates-inc.py computes the crates' licences for {', '.join(sorted(targets))} only, "
                     f"not {', '.join(missing)}: a crate only those link (cfg(target_arch)) is missing from LICENSE")
    crates = read("meta-rtpmgr/classes-recipe/rtpmgr_crates.bbclass")
    named = set(re.findall(r"\b[a-z0-9_]+-unknown-linux-[a-z0-9]+\b", crates))
    if not REQUIRED_CRATE_TARGETS <= named:
        raise Failed("rtpmgr_crates.bbclass was generated for other targets: run scripts/gen-crates-inc.py")
    return f"licences over {len(targets)} targets, {', '.join(sorted(REQUIRED_CRATE_TARGETS))} among them"


@rule
def systemd_units_use_dir_placeholders():
    """review f: systemd units name directories as @libexecdir@/@bindir@/... and do_install replaces them (no hard-coded /usr/libexec)."""
    dirs = {v: p for v, p in rtpmgr.manifest.DEFAULT_PATHS.items() if not v.startswith("RTPMGR_")}
    units = layer_files("*.service", "*.socket", "*.timer", "*.path", "*.mount")
    for unit in units:
        for n, line in enumerate(unit.read_text().splitlines(), 1):
            if line.lstrip().startswith("#") or "=" not in line:
                continue
            value = line.split("=", 1)[1]
            for word in re.findall(r"(?:^|[\s=:-])(/[^\s]*)", value):
                hit = next((v for v, p in sorted(dirs.items(), key=lambda x: -len(x[1]))
                            if word == p or word.startswith(p + "/")), None)
                if hit:
                    raise Failed(f"{unit.relative_to(TOP)}:{n}: {word}: write @{hit}@ (replaced in do_install with the "
                                 f"build's ${{{hit}}}), as oe-core's units do; {dirs[hit]} is only poky's default")
    # The class must replace them: run its command generator for one unit and look at what it emits.
    cls = read("meta-rtpmgr/classes-recipe/rtpmgr_install.bbclass")
    m = re.search(r"^def rtpmgr_install_commands\(d\):\n(?:[ \t]+.*\n|\n)+", cls, re.M)
    if not m:
        raise Failed("rtpmgr_install.bbclass: no rtpmgr_install_commands(d): the rule no longer finds the installer")
    entry = next(e for e in rtpmgr.manifest.read(MANIFEST) if e.dest.endswith("rtpmgr-data.service"))
    values = {"RTPMGR_UNIT_SUFFIXES": var_value(cls, "RTPMGR_UNIT_SUFFIXES") or ".service",
              **{v: "/opt/" + v for v in dirs}}
    scope = {"rtpmgr_install_entries": lambda d: [entry]}
    exec(m.group(0), scope)
    commands = scope["rtpmgr_install_commands"](FakeData(values))
    with tempfile.TemporaryDirectory() as tmp:
        unit = pathlib.Path(tmp, "unit")
        shutil.copy(LAYER / entry.path, unit)
        for line in commands.splitlines():
            if line.startswith("sed ") and entry.dest in line:
                script = expand_vars(line.replace("${D}" + entry.dest, str(unit)), values)
                subprocess.run(["sh", "-c", script], check=True)
        text = unit.read_text()
    if "ExecStart=/opt/libexecdir/rtpmgr/rtpmgr-data start" not in text:
        raise Failed("rtpmgr_install.bbclass does not replace @libexecdir@ in rtpmgr-data.service with ${libexecdir} "
                     "(with libexecdir=/opt/libexecdir the unit would not run the installed script)")
    return f"{len(units)} units use @dir@ placeholders; rtpmgr_install replaces them with the build's directories"


# What U-Boot's defconfigs of the supported machines do with U-Boot's own environment (u-boot 2024.01,
# the scarthgap version): rpi_arm64_defconfig keeps it in uboot.env on the FAT boot partition
# (ENV_IS_IN_FAT defaults to y on BCM283x, ENV_FAT_FILE "uboot.env", one copy, ENV_SIZE 0x4000);
# qemu_arm64_defconfig keeps it in flash.
UBOOT_DEFCONFIG_ENV = {
    "qemuarm64": ("qemuall", {"ENV_IS_IN_FLASH": "y"}),
    "raspberrypi4-64": ("rpi", {"ENV_IS_IN_FAT": "y", "ENV_FAT_FILE": '"uboot.env"', "ENV_SIZE": "0x4000"}),
}


def kconfig_fragment(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^CONFIG_(\w+)=(.*)$", line) or re.match(r"^# CONFIG_(\w+) is not set$", line)
        if m:
            out[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
    return out


@rule
def uboot_env_layouts_agree():
    """review g: U-Boot's own environment never lands in the boot-state files in another layout (a manual saveenv); fw_env.config and mkenvimage agree."""
    fw = [l.split() for l in read("meta-rtpmgr/recipes-bsp/u-boot/files/fw_env.config").splitlines()
          if l.strip() and not l.lstrip().startswith("#")]
    recipe = layer_files("rtpmgr-boot-script_*.bb")[0].read_text()
    mk = re.search(r"mkenvimage (-r )?-s (0x[0-9a-fA-F]+) -o \$\{B\}/(\S+)", recipe)
    if len(fw) != 2 or not mk or not mk.group(1):
        raise Failed("fw_env.config must list two copies and rtpmgr-boot-script must write them with mkenvimage -r "
                     "(redundant layout): boot.scr reads the flags byte")
    files = [os.path.basename(f[0]) for f in fw]
    sizes = {int(f[2], 16) for f in fw}
    if sizes != {int(mk.group(2), 16)} or mk.group(3) != files[0]:
        raise Failed(f"fw_env.config ({fw}) and mkenvimage (-s {mk.group(2)} -o {mk.group(3)}) disagree on size or file")
    inc = read("meta-rtpmgr/recipes-bsp/u-boot/u-boot-rtpmgr-ab.inc")
    frag_dir = LAYER / "recipes-bsp/u-boot/files"
    done = []
    for machine, (override, defconfig) in UBOOT_DEFCONFIG_ENV.items():
        cfg = dict(defconfig)
        for m in re.finditer(r'^SRC_URI(:append(?::(\w+))?)?\s*\+?=\s*"([^"]*)"', inc, re.M):
            if m.group(2) not in (None, override):
                continue
            for name in re.findall(r"file://(\S+\.cfg)", m.group(3)):
                cfg.update(kconfig_fragment((frag_dir / name).read_text()))
        if cfg.get("ENV_IS_IN_FAT", "n") == "y":
            env_file = cfg.get("ENV_FAT_FILE", '"uboot.env"').strip('"')
            if env_file in files:
                redund = cfg.get("ENV_FAT_FILE_REDUND", '"uboot-redund.env"').strip('"')
                if cfg.get("SYS_REDUNDAND_ENVIRONMENT") != "y" or [env_file, redund] != files or \
                        int(cfg.get("ENV_SIZE", "0x2000"), 16) not in sizes:
                    raise Failed(f"{machine}: U-Boot keeps its environment in {env_file} on the boot partition in the "
                                 "single-copy layout (no flags byte), a file fw_env.config and boot.scr read as a copy of "
                                 "the redundant boot state: a manual `saveenv` writes a copy both reject. Make U-Boot's "
                                 "environment redundant with the same files and size, or store it elsewhere/nowhere")
                # U-Boot would load the boot state as its whole environment and lose bootcmd.
                if cfg.get("ENV_APPEND") != "y":
                    raise Failed(f"{machine}: U-Boot reads the boot state as its environment without ENV_APPEND: its "
                                 "default environment (bootcmd) would be replaced by three RAUC variables")
        where = "nowhere" if cfg.get("ENV_IS_NOWHERE") == "y" else \
            "flash" if cfg.get("ENV_IS_IN_FLASH") == "y" else cfg.get("ENV_FAT_FILE", "?")
        done.append(f"{machine}: U-Boot env {where}")
    return f"boot state: {' + '.join(files)} (redundant, {mk.group(2)}); " + "; ".join(done)


# ---------------------------------------------------------------- confinement: SELinux module vs the layer
SELINUX_DIR = LAYER / "dynamic-layers" / "selinux" / "recipes-security" / "rtpmgr-selinux"


def file_contexts(fc_text):
    """(regex, file type or None, SELinux type) of each line of a refpolicy .fc file."""
    out = []
    for line in fc_text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(?:(-[-bcdlps])\s+)?gen_context\(\w+:\w+:(\w+)", line)
        if not m:
            raise Failed(f"rtpmgr.fc: cannot read line {line!r}")
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def labelled(contexts, path, ftype="--"):
    """The type the last matching line gives path (setfiles: the last match wins), or None."""
    hit = None
    for regex, kind, setype in contexts:
        if (kind is None or kind == ftype) and re.fullmatch(regex, path):
            hit = setype
    return hit


@rule
def selinux_contexts_match_layer():
    """confinement: rtpmgr.fc labels what the layer installs and runs (service binaries as their domain's entrypoint, /etc/rtpmgr, the logs, the ring devices), the recipe relabels those paths, AppArmor confines the same binaries."""
    fc = file_contexts((SELINUX_DIR / "files" / "rtpmgr.fc").read_text())
    te = (SELINUX_DIR / "files" / "rtpmgr.te").read_text()
    entrypoints = dict((exe, dom) for dom, exe in re.findall(r"^init_daemon_domain\((\w+),\s*(\w+)\)", te, re.M))
    # The binaries the services run: the units' ExecStart from @bindir@ and the init scripts' RTP_*= paths.
    binaries = set()
    for unit in layer_files("*.service"):
        binaries |= set("/usr/bin/" + b for b in re.findall(r"^ExecStart=[-@:+!]*@bindir@/(\S+)", unit.read_text(), re.M))
    for init in layer_files("*.init"):
        binaries |= set(re.findall(r"^RTP_\w+=(/usr/bin/\S+)", init.read_text(), re.M))
    if not binaries:
        raise Failed("found no service binary in the layer's units and init scripts")
    for b in sorted(binaries):
        setype = labelled(fc, b)
        if setype not in entrypoints:
            raise Failed(f"{b} (run by a service) is labelled {setype or 'by no line of rtpmgr.fc'}, which is the "
                         "entrypoint of no init_daemon_domain() of rtpmgr.te: the service would run unconfined")
    # Files the layer installs or the services write, and the ring devices (RTPM_DEVICE_PREFIX + index).
    want = {}
    for e in rtpmgr.manifest.read(MANIFEST):
        dest = rtpmgr.manifest.expand_default(e.dest)
        if dest.startswith("/etc/rtpmgr/"):
            want[dest] = ("--", "rtpmgr_conf_t")
    for init in layer_files("*.init"):
        for log in re.findall(r"^RTP_LOG=(\S+)", init.read_text(), re.M):
            want[log.replace("$NAME", init.stem)] = ("--", "rtpmgr_log_t")
    prefix = re.search(r'#define RTPM_DEVICE_PREFIX\s+"(\w+)"', read("include/rtp_mgr_ioctl.h")).group(1)
    want[f"/dev/{prefix}0"] = ("-c", "rtpmgr_device_t")
    want[f"/dev/{prefix}17"] = ("-c", "rtpmgr_device_t")
    for path, (ftype, setype) in sorted(want.items()):
        got = labelled(fc, path, ftype)
        if got != setype:
            raise Failed(f"rtpmgr.fc labels {path} {got or 'not at all'}, not {setype}")
    # The recipe's postinst relabels exactly what rtpmgr.fc names (but the shm rings, made at run time).
    recipe = next(SELINUX_DIR.glob("rtpmgr-selinux_*.bb")).read_text()
    m = re.search(r"restorecon -R -i ((?:[^\n\\]|\\\n)*)", recipe)
    if not m:
        raise Failed("rtpmgr-selinux's postinst does not restorecon the module's paths")
    values = {"bindir": "/usr/bin", "sysconfdir": "/etc", "localstatedir": "/var"}
    relabel = set(re.sub(r"\$\{(\w+)\}", lambda v: values[v.group(1)], p) for p in m.group(1).replace("\\\n", " ").split())
    named = set()
    trees = [regex[:-len("(/.*)?")] for regex, _, _ in fc if regex.endswith("(/.*)?")]
    for regex, _, _ in fc:
        if regex.startswith("/dev/shm/"):
            continue
        # A file inside a tree another line names is relabelled by restorecon -R of that tree.
        if any(regex.startswith(tree + "/") for tree in trees):
            continue
        named.add(re.sub(r"(\(/\.\*\)\?|\[0-9\]\+)$", "", regex) + ("*" if regex.endswith("[0-9]+") else ""))
    if relabel != named:
        raise Failed(f"rtpmgr-selinux's restorecon paths {sorted(relabel)} differ from rtpmgr.fc's {sorted(named)}")
    # AppArmor confines the same binaries.
    profiles = set()
    for f in (LAYER / "dynamic-layers" / "security" / "recipes-security" / "rtpmgr-apparmor" / "files").glob("usr.bin.*"):
        profiles |= set(re.findall(r"^profile \S+ (/\S+)(?: flags=\([^)]*\))? \{", f.read_text(), re.M))
    if profiles != binaries:
        raise Failed(f"AppArmor profiles attach to {sorted(profiles)}, the services run {sorted(binaries)}")
    return (f"{len(binaries)} service binaries enter {', '.join(sorted(set(entrypoints.values())))}; "
            f"{len(want)} installed paths labelled; restorecon and AppArmor cover the same")


def selinux_domain_rules(domain):
    """The rtpmgr module's rules that apply to domain: its own lines of rtpmgr.te and the bodies of the
    rtpmgr.if templates rtpmgr.te calls with it (with $1 replaced)."""
    te = (SELINUX_DIR / "files" / "rtpmgr.te").read_text()
    iface = (SELINUX_DIR / "files" / "rtpmgr.if").read_text()
    bodies = dict(re.findall(r"^(?:template|interface)\(`(\w+)',`(.*?)^'\)", iface, re.M | re.S))
    text = te
    for name, arg in re.findall(r"^(\w+)\((\w+)\)\s*$", te, re.M):
        if name in bodies and arg == domain:
            text += "\n" + bodies[name].replace("$1", domain)
    return text


def service_domains():
    """{binary path: SELinux domain} of the binaries rtpmgr.fc makes init_daemon_domain() entrypoints."""
    fc = file_contexts((SELINUX_DIR / "files" / "rtpmgr.fc").read_text())
    te = (SELINUX_DIR / "files" / "rtpmgr.te").read_text()
    entry = dict((exe, dom) for dom, exe in re.findall(r"^init_daemon_domain\((\w+),\s*(\w+)\)", te, re.M))
    return dict((regex, entry[setype]) for regex, kind, setype in fc if setype in entry)


@rule
def selinux_services_notify_and_ready():
    """review: under SELinux every Type=notify service's domain may create the unix datagram socket of sd_notify, and every --ready-file directory of the init scripts has a type of its own in rtpmgr.fc that the domain may write."""
    fc = file_contexts((SELINUX_DIR / "files" / "rtpmgr.fc").read_text())
    te = (SELINUX_DIR / "files" / "rtpmgr.te").read_text()
    declared = set(re.findall(r"^type (\w+);", te, re.M))
    domains = service_domains()
    done = []
    for unit in layer_files("*.service"):
        text = unit.read_text()
        if not re.search(r"^Type=notify\s*$", text, re.M):
            continue
        b = re.search(r"^ExecStart=[-@:+!]*@bindir@/(\S+)", text, re.M)
        if not b or "/usr/bin/" + b.group(1) not in domains:
            raise Failed(f"{unit.name}: Type=notify, but its binary is no entrypoint of rtpmgr.te")
        dom = domains["/usr/bin/" + b.group(1)]
        rules = selinux_domain_rules(dom)
        if not re.search(r"allow %s self:unix_dgram_socket (create_socket_perms|\{[^}]*\bcreate\b)" % dom, rules):
            raise Failed(f"{unit.name} is Type=notify, but {dom} may not create a unix_dgram_socket: "
                         "sd_notify(READY=1) is refused and systemd kills the service at TimeoutStartSec")
        # The datagram goes to $NOTIFY_SOCKET by path (/run/systemd/notify): the lookup needs search
        # on /run/systemd (init_runtime_t) and the send write on the socket file (second review).
        for needed in ("init_search_runtime", "init_write_runtime_socket"):
            if not re.search(r"\b%s\(%s\)" % (needed, dom), rules):
                raise Failed(f"{unit.name} is Type=notify, but {dom} lacks {needed}(): sd_notify cannot "
                             "reach /run/systemd/notify")
        done.append(f"{unit.stem}: {dom} notifies")
    for init in layer_files("*.init"):
        text = init.read_text()
        m = re.search(r"^READY_FILE=\$\{READY_FILE:-(\S+)\}", text, re.M)
        if not m or "--ready-file" not in text:
            continue
        directory = os.path.dirname(m.group(1)).replace("/var/run/", "/run/")
        exe = re.search(r"^RTP_\w+=(/usr/bin/\S+)", text, re.M).group(1)
        dom = domains.get(exe)
        setype = labelled(fc, directory, "-d")
        if setype is None or setype not in declared:
            raise Failed(f"{init.name}: --ready-file in {directory}, which rtpmgr.fc gives "
                         f"{setype or 'no type'} of the module: {dom} writes into var_run_t (refused)")
        rules = selinux_domain_rules(dom)
        if not re.search(r"manage_files_pattern\(%s, %s, %s\)" % (dom, setype, setype), rules):
            raise Failed(f"{init.name}: {dom} may not create its readiness file in {directory} ({setype})")
        done.append(f"{init.stem}: {directory} {setype}")
    if not done:
        raise Failed("no Type=notify unit and no --ready-file: the rule checks nothing")
    return "; ".join(done)


@rule
def rtpmgr_data_binds_labelled():
    """review: on A/B images every directory rtpmgr-data bind-mounts from /data onto the services' paths has the same type in rtpmgr.fc as its target, and rtpmgr-data relabels it (restorecon) after creating it."""
    fc = file_contexts((SELINUX_DIR / "files" / "rtpmgr.fc").read_text())
    init = LAYER / "recipes-bsp" / "rtpmgr-data" / "files" / "rtpmgr-data.init"
    text = init.read_text()
    data = re.search(r"^DATA=(\S+)", text, re.M).group(1)
    # `[ -d TARGET ] && bind "SOURCE" TARGET`; the log directory's target is $(readlink -f
    # /var/log)/rtpmgr, i.e. /var/log/rtpmgr.
    binds = [(target.strip('"').replace("$logdir", "/var/log/rtpmgr"), source.replace("$DATA", data))
             for _, source, target in re.findall(r'^\s*\[ -[df] (\S+) \] && bind "([^"]+)" (\S+)$', text, re.M)]
    if len(binds) < 3:
        raise Failed(f"rtpmgr-data.init: found {len(binds)} bind mounts, expected /etc/rtpmgr, rtp_mgr.conf, the log")
    done = []
    restored = re.search(r"^\s*restorecon -R ([^|\n]*)", text, re.M)
    restored = restored.group(1).replace("$DATA", data).replace('"', "").split() if restored else []
    for target, source in binds:
        kind = "--" if source.endswith(".conf") else "-d"
        got, want = labelled(fc, source, kind), labelled(fc, target, kind)
        if got is None:
            raise Failed(f"rtpmgr.fc labels {source} (bind-mounted onto {target}) with nothing: on an A/B image "
                         f"{target} shows the data partition's default type, not {want or 'its type'}")
        if want is not None and got != want:
            raise Failed(f"rtpmgr.fc labels {source} {got}, but {target}, where it is bind-mounted, {want}")
        if not any(source == r or source.startswith(r + "/") for r in restored):
            raise Failed(f"rtpmgr-data.init does not restorecon -R {source} after creating it")
        done.append(f"{source} {got}")
    return "; ".join(done)


# ---------------------------------------------------------------- confinement: AppArmor profiles vs the layer
APPARMOR_DIR = LAYER / "dynamic-layers" / "security" / "recipes-security" / "rtpmgr-apparmor"


def apparmor_profiles():
    """{binary path: profile text} of the layer's AppArmor profiles."""
    out = {}
    for f in sorted((APPARMOR_DIR / "files").glob("usr.bin.*")):
        text = f.read_text()
        m = re.search(r"^profile \S+ (/\S+)(?: flags=\([^)]*\))? \{", text, re.M)
        if m:
            out[m.group(1)] = text
    if not out:
        raise Failed(f"no AppArmor profile in {(APPARMOR_DIR / 'files').relative_to(TOP)}")
    return out


def apparmor_glob_regex(glob):
    """An AppArmor path glob as a Python regex (** any path, * within one component, {a,b}, @{run})."""
    glob = glob.replace("@{run}", "/{var/,}run").replace("@{PROC}", "/proc").replace("@{sys}", "/sys")
    out, i = "", 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        out += {"*": "[^/]*", "?": "[^/]", "{": "(?:", "}": ")", ",": "|"}.get(c, re.escape(c) if c not in "[]-^" else c)
        i += 1
    return out


def apparmor_writable(profile, path):
    """The first rule of profile (with its includes of this layer) that lets the process write path, or None."""
    for m in re.finditer(r"^\s*(?:owner\s+)?(/\S+|@\{\w+\}\S*)\s+([rwaklmixPUC]+),", profile, re.M):
        if set("wa") & set(m.group(2)) and re.fullmatch(apparmor_glob_regex(m.group(1)), path):
            return m.group(0).strip()
    return None


def shell_expand(word, assigned):
    """word with the $VAR/${VAR}/${VAR:-default} of assigned (a script's own assignments) expanded."""
    def one(m):
        name, default = m.group(1) or m.group(3), m.group(2)
        if name == "$":
            return "12345"
        return assigned.get(name, default if default is not None else m.group(0))
    for _ in range(5):
        word = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+|\$)", one, word)
    return word


@rule
def apparmor_profiles_load_at_boot():
    """review: the profiles are loaded before the services start: under sysvinit by the layer's own init script (meta-security's /etc/init.d/apparmor is rc.apparmor.functions, a function library that loads nothing), started before rtp-rx and rtp-feeder; under systemd the units are After=apparmor.service."""
    recipe = next(APPARMOR_DIR.glob("rtpmgr-apparmor_*.bb")).read_text()
    profiles = apparmor_profiles()
    if not re.search(r"^inherit .*\bupdate-rc\.d\b", recipe, re.M):
        raise Failed("rtpmgr-apparmor does not inherit update-rc.d: on a sysvinit image (the layer's default) "
                     "nothing runs apparmor_parser, and rtp_app and rtp-feeder run unconfined")
    name = var_value(recipe, "INITSCRIPT_NAME")
    params = var_value(recipe, "INITSCRIPT_PARAMS") or ""
    inst = re.search(r"install .*\$\{S\}/(\S+) \$\{D\}\$\{sysconfdir\}/init\.d/%s\b" % re.escape(name or "-"), recipe)
    if not name or not inst:
        raise Failed(f"rtpmgr-apparmor installs no /etc/init.d/{name or '<INITSCRIPT_NAME>'}")
    if "bb.utils.contains('DISTRO_FEATURES', 'sysvinit'" not in recipe:
        raise Failed("rtpmgr-apparmor installs its init script whatever the init system: only with DISTRO_FEATURES sysvinit")
    script = (APPARMOR_DIR / "files" / inst.group(1)).read_text()
    start = re.search(r'^case "\$1" in\n(?:.*\n)*?^(?:[\w |-]*\b)?start\b[^)]*\)\n((?:.*\n)*?)\t;;', script, re.M)
    if not start or "apparmor_parser -r" not in start.group(1):
        raise Failed(f"{inst.group(1)}: no `start` branch of a case \"$1\" that runs apparmor_parser -r")
    for binary in profiles:
        base = "/etc/apparmor.d/usr.bin." + os.path.basename(binary)
        if base not in script:
            raise Failed(f"{inst.group(1)} does not load {base}")
    level = re.match(r"(?:start|defaults) (\d+)", params)
    if not level:
        raise Failed(f"INITSCRIPT_PARAMS {params!r}: no start level")
    done = [f"/etc/init.d/{name} start {level.group(1)}"]
    for bb in layer_files("*.bb"):
        text = bb.read_text()
        svc = var_value(text, "INITSCRIPT_NAME")
        init = next(iter(bb.parent.glob(f"files/{svc}.init")), None) if svc else None
        if not init:
            continue
        exe = re.search(r"^RTP_\w+=(/usr/bin/\S+)", init.read_text(), re.M)
        if not exe or exe.group(1) not in profiles:
            continue
        theirs = re.match(r"(?:start|defaults) (\d+)", var_value(text, "INITSCRIPT_PARAMS") or "")
        if not theirs or int(theirs.group(1)) <= int(level.group(1)):
            raise Failed(f"{svc} ({exe.group(1)}) starts at {theirs and theirs.group(1)}, not after "
                         f"/etc/init.d/{name} ({level.group(1)}): it would run unconfined")
        done.append(f"{svc} {theirs.group(1)}")
    for unit in layer_files("*.service"):
        text = unit.read_text()
        runs = re.findall(r"^ExecStart=[-@:+!]*@(?:bindir|libexecdir)@/(\S+)", text, re.M)
        confined = any("/usr/bin/" + r in profiles for r in runs) or "rtp_app" in text.split("[Service]")[-1]
        if confined and not re.search(r"^After=.*\bapparmor\.service\b", text, re.M):
            raise Failed(f"{unit.name} runs a profiled binary but is not After=apparmor.service")
    return ", ".join(done) + "; units After=apparmor.service"


@rule
def apparmor_kernel_configured():
    """bitbake-check: rtpmgr-apparmor.inc switches on DISTRO_FEATURES security with apparmor: meta-security's linux-yocto bbappend adds features/apparmor/apparmor.scc only with 'security' (without it the kernel has no AppArmor, nothing loads, and meta-security warns at every parse); kas/apparmor.yml brings meta-security and meta-oe (its LAYERDEPENDS) and requires the include."""
    inc = LAYER / "conf" / "include" / "rtpmgr-apparmor.inc"
    features = set()
    for _, line in code_lines(inc):
        m = re.match(r'\s*DISTRO_FEATURES(?::append\s*=|\s*\+=)\s*"([^"]*)"', line)
        if m:
            features |= set(m.group(1).split())
    missing = {"apparmor", "security", "rtpmgr-apparmor"} - features
    if missing:
        raise Failed(f"{inc.relative_to(TOP)} does not add {sorted(missing)} to DISTRO_FEATURES")
    kas = read("kas/apparmor.yml")
    for repo in ("meta-security", "meta-openembedded"):
        if not re.search(r"^  %s:\n(?:    .*\n)*?    commit: [0-9a-f]{40}$" % repo, kas, re.M):
            raise Failed(f"kas/apparmor.yml does not pin {repo} by commit")
    if not re.search(r"^      meta-oe:$", kas, re.M) or "require conf/include/rtpmgr-apparmor.inc" not in kas:
        raise Failed("kas/apparmor.yml lacks meta-oe (meta-security's LAYERDEPENDS) or the rtpmgr-apparmor.inc require")
    return f"DISTRO_FEATURES {' '.join(sorted(features))}; kas/apparmor.yml pins meta-security and meta-oe"


@rule
def apparmor_output_files_writable():
    """review: every file the layer's scripts and units redirect rtp_app's or rtp-feeder's output into is writable under its profile: AppArmor checks inherited descriptors again at exec and silently swaps a refused one for /dev/null (rtpmgr-metrics wrote empty metrics)."""
    profiles = apparmor_profiles()
    by_name = dict((os.path.basename(b), b) for b in profiles)
    checked = []
    scripts = [f for f in layer_files("files/*") if f.is_file() and f.read_text(errors="replace").startswith("#!/bin/sh")]
    for f in scripts:
        text = f.read_text()
        assigned = {}
        for name, value in re.findall(r"^(\w+)=(\S*)", text, re.M):
            assigned.setdefault(name, value.strip('"'))
        for n, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            words = shell_expand(line, assigned).split()
            if not words or os.path.basename(words[0].strip('"')) not in by_name:
                continue
            binary = by_name[os.path.basename(words[0].strip('"'))]
            for target in re.findall(r"(?<![0-9&])>>?\s*\"?([^\"\s&;]+)", shell_expand(line, assigned)):
                if target.startswith("/dev/null"):
                    continue
                if not apparmor_writable(profiles[binary], target):
                    raise Failed(f"{f.relative_to(TOP)}:{n}: {os.path.basename(binary)}'s output goes to {target}, "
                                 "which its profile does not let it write: it would get /dev/null instead")
                checked.append(f"{f.name}: {target}")
    for unit in layer_files("*.service"):
        text = unit.read_text()
        runs = re.findall(r"^ExecStart=[-@:+!]*@bindir@/(\S+)", text, re.M)
        for r in runs:
            if "/usr/bin/" + r not in profiles:
                continue
            for target in re.findall(r"^Standard(?:Output|Error)=(?:append|file|truncate):(\S+)", text, re.M):
                if not apparmor_writable(profiles["/usr/bin/" + r], target):
                    raise Failed(f"{unit.name}: {r}'s output goes to {target}, which its profile does not let it write")
                checked.append(f"{unit.name}: {target}")
    if not checked:
        raise Failed("found no redirected output of a profiled binary: the rule checks nothing")
    return f"{len(checked)} redirects allowed ({'; '.join(checked)})"


@rule
def kas_fragments_keep_machine():
    """review: no kas/*.yml fragment includes kas.yml: kas applies it again after the files listed before, so kas.yml:kas/raspberrypi4-64.yml:kas/rauc.yml built qemuarm64."""
    for f in sorted((TOP / "kas").glob("*.yml")):
        # header: includes: - FILE  (or - file: FILE); plain text, no YAML module needed
        m = re.search(r"^  includes:\n((?:    .*\n)*)", f.read_text(), re.M)
        names = re.findall(r"^    -\s*(?:file:\s*)?(\S+)", m.group(1), re.M) if m else []
        if any(os.path.basename(n) == "kas.yml" for n in names):
            raise Failed(f"{f.relative_to(TOP)} includes kas.yml: in kas.yml:kas/raspberrypi4-64.yml:{f.relative_to(TOP)} "
                         "kas applies kas.yml again after the Pi file, and machine (qemuarm64) and target revert")
    return "kas/*.yml are fragments after kas.yml: none re-includes it"


def main(argv):
    if "--list" in argv:
        for r in RULES:
            print(f"{r.__name__}: {r.__doc__}")
        return 0
    chosen = [r for r in RULES if not argv[1:] or r.__name__ in argv[1:]]
    failed = 0
    for r in chosen:
        try:
            print(f"    ok: {r.__name__}: {r()}")
        except (Failed, rtpmgr.source.SourceError, rtpmgr.manifest.ManifestError, OSError,
                subprocess.CalledProcessError) as e:
            print(f"    FAIL: {r.__name__}: {e}\n          ({r.__doc__})", file=sys.stderr)
            failed += 1
    print(f"check-layer-rules: {len(chosen) - failed} of {len(chosen)} rules passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
