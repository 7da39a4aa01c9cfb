#!/usr/bin/env python3
"""check-commands.py - every external command our tests and scripts run must come from somewhere.

A fresh Debian 12 machine has only its base system. A command that a test or script runs but that
scripts/setup-host.sh does not install works on a developer's machine (where someone installed it by
hand) and fails on a fresh one: this happened with `ping`. This check finds the commands and fails
unless each one is accounted for in scripts/commands.txt:

  host side   shell scripts run on the build host (scripts/, test/run-tests.sh, test/qemu/*.sh,
              test/ota/*.sh, the Makefile, .ci/run) and `Command::new("...")` in the Rust crates
              (their tests run on the host), including commands run through `ip netns exec NS CMD`.
              Each command maps to the Debian package that provides it; that package must be
              installed by scripts/setup-host.sh, or be a base-system package listed in
              commands.txt with the reason it is always there.
  guest side  shell scripts run inside the QEMU test image (test/device/, test/qemu/init,
              test/ota/guest/). Each command must be a busybox applet (the image's shell is
              busybox), a file the image installs (ours), or come from a package in
              test/qemu/rootfs-packages.txt.

Where a command is installed, its package is also checked against what dpkg says (a wrong mapping
fails). The extraction is a heuristic over shell syntax (first word of each simple command, after
`|`, `;`, `&&`, `||`, `$(`, `!`, `then`, `do`, wrappers such as `timeout`, `nice`, `flock`, `env`,
`exec`, `with_lock`), tuned to this repository's scripts; words it cannot judge are reported, never
silently passed.

Usage: scripts/check-commands.py [--list]   (--list: print each command with where it is used)
"""
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOST_SHELL = [
    "scripts/*.sh", "scripts/heavy-lock", "test/run-tests.sh", "test/qemu/*.sh", "test/ota/*.sh",
    ".ci/run", "Makefile",
]
GUEST_SHELL = [
    "test/device/run-device-tests", "test/device/stream-check", "test/device/stream-lib.sh",
    "test/device/demo-stream", "test/device/run-bench", "test/device/xdp-check",
    "test/device/kernel/*.sh", "test/qemu/init", "test/ota/guest/initramfs-init",
    "test/ota/guest/ota-agent",
]

SHELL_WORDS = set("""
if then else elif fi for while until do done case esac in function select time return local export
readonly declare typeset unset set shift break continue exit eval exec source . trap wait read
printf echo test [ [[ ]] true false : cd pwd pushd popd umask ulimit command type hash alias
getopts let mapfile readarray kill jobs fg bg disown builtin caller compgen complete shopt
enable help logout suspend times dirs { } ( ) ! -- ;; esac
""".split())

# Words that run the rest of the line as a command; value: how many of their own arguments to skip
# (options are skipped as well).
WRAPPERS = {"timeout": 1, "nice": 0, "flock": 1, "env": 0, "exec": 0, "with_lock": 0, "heavy": 0,
            "sudo": 0, "nohup": 0, "setsid": 0, "chroot": 1, "xargs": 0, "unshare": 0, "stdbuf": 0,
            "taskset": 1, "ionice": 0, "command": 0}


def expand(patterns):
    import glob
    out = []
    for p in patterns:
        out += sorted(glob.glob(os.path.join(REPO, p)))
    return [f for f in out if os.path.isfile(f)]


def unquote(text):
    """Blank out comments and quoted strings (across lines), keep newlines and the command
    substitutions inside double quotes, which run commands of their own."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append("  " if text[i + 1] != "\n" else " \x00\n")  # \x00 marks a continued line
            i += 2
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;(|&"):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j
            out.append(" QUOTED " + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == '"':
            j, subs = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith("$(", j) and not text.startswith("$((", j):
                    depth, k = 1, j + 2
                    while k < n and depth:
                        depth += {"(": 1, ")": -1}.get(text[k], 0)
                        k += 1
                    subs.append(unquote(text[j + 2:k - 1]).replace("\n", " ; "))
                    j = k
                    continue
                j += 1
            out.append(" QUOTED " + "".join(" ; " + x + " ; " for x in subs) + "\n" * text.count("\n", i, j))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions_in(paths):
    funcs = set()
    for p in paths:
        funcs |= set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", open(p).read(), re.M))
    return funcs


def commands_in_shell(path, funcs, makefile=False):
    text = open(path, encoding="utf-8", errors="replace").read()
    if makefile:
        text = "\n".join(re.sub(r"\$\$", "$", re.sub(r"\$\((\w+)\)", r"$\1", l[1:].lstrip("@-")))
                         if l.startswith("\t") else "" for l in text.split("\n"))
    # Here-documents are data, not commands.
    lines, keep, heredoc = text.split("\n"), [], None
    for line in lines:
        if heredoc:
            keep.append("")
            if line.strip() == heredoc:
                heredoc = None
            continue
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
        keep.append(line)
    text = unquote("\n".join(keep))
    text = re.sub(r"\$\(\(.*?\)\)", " ARITH ", text, flags=re.S)
    text = re.sub(r"\{\w+\}[<>]", " ", text)                      # exec {fd}>>file
    text = re.sub(r"[A-Za-z_]\w*\+?=\([^()]*\)", " ARRAY ", text, flags=re.S)  # a=(x y), multi-line
    text = re.sub(r"\$\{[^}]*\}", " VAR ", text)  # ${x:-a b c}: words of a value, not commands
    found, lines, pending = [], [], None
    for n, line in enumerate(text.split("\n"), 1):
        # A continued line belongs to the command it continues.
        pending = (pending[0], pending[1] + " " + line) if pending else (n, line)
        if line.endswith("\x00"):
            continue
        lines.append((pending[0], pending[1].replace("\x00", " ")))
        pending = None
    for n, line in lines:
        line = re.sub(r"^\s*[^()\s$][^()$]*\)(?=\s|$)", " ", line)   # case pattern "a | b)"
        parts = re.split(r"\|\||&&|[|;&`]|\$\(|(?:^|\s)[(){}](?=\s|$)|\)|(?:^|\s)!(?=\s)|"
                         r"\bthen\b|\bdo\b|\belse\b|\bif\b|\bwhile\b|\buntil\b", line)
        for part in parts:
            words = part.split()
            i = 0
            while i < len(words):
                w = words[i]
                if re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", w):  # assignment
                    i += 1
                    continue
                if w in WRAPPERS:
                    skip = WRAPPERS[w]
                    i += 1
                    while i < len(words) and (words[i].startswith("-") or re.match(r"^[A-Za-z_]\w*=", words[i])):
                        # `nice -n 10`, `timeout --kill-after=10 60`: an option may take a value.
                        if words[i] in ("-n", "-k", "-s", "-c", "-u", "-w", "-E") and i + 1 < len(words):
                            i += 1
                        i += 1
                    i += skip
                    continue
                break
            if i >= len(words):
                continue
            w = words[i]
            if w in SHELL_WORDS or w in funcs or w in ("QUOTED", "ARITH", "ARRAY", "VAR"):
                continue
            if w[0] in "$-<>*0123456789{" or "=" in w or "/" in w:
                continue  # a variable, option, redirection, or a path (ours, or checked by its script)
            if not re.match(r"^[A-Za-z0-9_.+-]+$", w):
                continue
            found.append((w, f"{os.path.relpath(path, REPO)}:{n}"))
    return found


def commands_in_rust():
    found = []
    for root, dirs, files in os.walk(os.path.join(REPO, "crates")):
        dirs[:] = [d for d in dirs if d != "target"]
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(root, f)
            text = open(p, encoding="utf-8").read()
            for m in re.finditer(r'Command::new\("([^"]+)"\)', text):
                n = text.count("\n", 0, m.start()) + 1
                found.append((m.group(1), f"{os.path.relpath(p, REPO)}:{n}"))
            # `ip netns exec NS CMD`: CMD runs on the host too.
            for m in re.finditer(r'"netns",\s*"exec",\s*[^,\]]+,\s*"([^"]+)"', text):
                n = text.count("\n", 0, m.start()) + 1
                found.append((m.group(1), f"{os.path.relpath(p, REPO)}:{n}"))
    return found


def load_manifest():
    host, base, guest = {}, {}, {}
    path = os.path.join(REPO, "scripts/commands.txt")
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        if f[0] == "host" and len(f) == 3:
            host[f[1]] = f[2]
        elif f[0] == "base" and len(f) == 2:
            base[f[1]] = True
        elif f[0] == "guest" and len(f) == 3:
            guest[f[1]] = f[2]
        else:
            sys.exit(f"scripts/commands.txt:{n}: cannot parse '{line}'")
    return host, base, guest


def setup_packages():
    text = open(os.path.join(REPO, "scripts/setup-host.sh")).read()
    pkgs = set()
    for m in re.finditer(r"^(?:host_pkgs|arm64_pkgs)=\((.*?)^\)", text, re.M | re.S):
        for line in m.group(1).split("\n"):
            line = line.split("#", 1)[0]
            pkgs.update(w.split(":")[0] for w in line.split())
    return pkgs


def via_alternatives(cmd):
    """True if CMD resolves through /etc/alternatives (awk: mawk or gawk, whichever is there)."""
    p = shutil.which(cmd)
    for _ in range(8):
        if not p or not os.path.islink(p):
            return False
        p = os.path.join(os.path.dirname(p), os.readlink(p))
        if p.startswith("/etc/alternatives/"):
            return True
    return False


def owner_in_dpkg_output(out):
    """The package of `dpkg -S` output, skipping its "diversion by X from/to:" lines (/bin/sh)."""
    for line in out.splitlines():
        if not line.startswith("diversion "):
            return line.split(":")[0].split(",")[0].strip()
    return None


def dpkg_package_of(cmd):
    path = shutil.which(cmd)
    if not path:
        return None
    for p in (path, os.path.realpath(path)):
        # usrmerge: /bin/x is packaged as /bin/x or /usr/bin/x
        alt = p[4:] if p.startswith("/usr/") else "/usr" + p
        for q in (p, alt):
            r = subprocess.run(["dpkg", "-S", q], capture_output=True, text=True)
            owner = owner_in_dpkg_output(r.stdout) if r.returncode == 0 else None
            if owner:
                return owner
    return "?"


def main():
    host_map, base_pkgs, guest_map = load_manifest()
    setup = setup_packages()
    ours = set(os.listdir(os.path.join(REPO, "test/device"))) | {"rtp_app", "rtp-feeder", "rtpmgr-conformance",
                                                               "rtp_mgr_selftest", "rtpmgr-bench"}
    errors = []
    host_found = commands_in_rust()
    host_files, guest_files = expand(HOST_SHELL), expand(GUEST_SHELL)
    host_funcs, guest_funcs = functions_in(host_files), functions_in(guest_files)
    for f in host_files:
        host_found += commands_in_shell(f, host_funcs, makefile=f.endswith("Makefile"))
    guest_found = []
    for f in guest_files:
        guest_found += commands_in_shell(f, guest_funcs)

    def group(found):
        g = {}
        for c, where in found:
            g.setdefault(c, []).append(where)
        return g

    host = group(host_found)
    guest = group(guest_found)
    if "--list" in sys.argv:
        for side, g in (("host", host), ("guest", guest)):
            for c in sorted(g):
                print(f"{side:5} {c:22} {' '.join(g[c][:3])}")
        return 0

    for cmd, where in sorted(host.items()):
        pkg = host_map.get(cmd)
        if pkg is None:
            errors.append(f"host command '{cmd}' ({where[0]}) is not in scripts/commands.txt: add "
                          f"'host {cmd} <debian-package>' and make scripts/setup-host.sh install the package")
            continue
        if pkg == "ours":
            continue
        if pkg not in setup and pkg not in base_pkgs and pkg not in ("rustup", "venv"):
            errors.append(f"host command '{cmd}' ({where[0]}) comes from package {pkg}, which "
                          f"scripts/setup-host.sh does not install and which is not a listed base package")
        real = dpkg_package_of(cmd)
        if real and real != "?" and real != pkg and pkg not in ("rustup", "venv") and not via_alternatives(cmd):
            errors.append(f"host command '{cmd}': scripts/commands.txt says package {pkg}, dpkg says {real}")
    rootfs = set()
    for line in open(os.path.join(REPO, "test/qemu/rootfs-packages.txt")):
        rootfs.update(line.split("#", 1)[0].split())
    for cmd, where in sorted(guest.items()):
        if cmd in ours:
            continue
        src = guest_map.get(cmd)
        if src is None:
            errors.append(f"guest command '{cmd}' ({where[0]}) is not in scripts/commands.txt: add "
                          f"'guest {cmd} busybox|ours|<package in test/qemu/rootfs-packages.txt>'")
            continue
        if src not in ("busybox", "ours") and src not in rootfs:
            errors.append(f"guest command '{cmd}' ({where[0]}) comes from {src}, which "
                          f"test/qemu/rootfs-packages.txt does not install")
    unused = sorted(set(host_map) - set(host))
    for e in errors:
        print("check-commands: " + e, file=sys.stderr)
    print(f"check-commands: {len(host)} host and {len(guest)} guest commands checked, "
          f"{len(errors)} problems" + (f" (listed but unused: {' '.join(unused)})" if unused else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
