#!/usr/bin/env python3
"""gen-crates-inc.py - turn crates/Cargo.lock into BitBake crate:// SRC_URI entries.

The Yocto recipes of rtp_app, rtp-feeder and rtpmgr-tests build offline: BitBake fetches every
crate that Cargo.lock pins in do_fetch (crate://crates.io/NAME/VERSION, checked against the
lock's sha256) and the cargo_bin_offline class points cargo at the unpacked crates. This script
writes that list, so it always matches the lock file the crates are built with.

The list is written as a class, meta-rtpmgr/classes-recipe/rtpmgr_crates.bbclass, which the three
recipes inherit: one generated file, no relative `require` paths.

Usage:
  scripts/gen-crates-inc.py            regenerate meta-rtpmgr/classes-recipe/rtpmgr_crates.bbclass
  scripts/gen-crates-inc.py --check    exit 1 if it is missing or differs from Cargo.lock
                                       (scripts/check-layer.sh runs this in CI)

Only crates.io packages are supported: a git or other-registry dependency cannot be verified by
a sha256 in Cargo.lock and is rejected with the package name, so it is never fetched silently.
"""
import argparse
import hashlib
import json
import pathlib
import re
import subprocess
import sys
import tomllib

TOP = pathlib.Path(__file__).resolve().parent.parent
LOCK = TOP / "crates" / "Cargo.lock"
INC = TOP / "meta-rtpmgr" / "classes-recipe" / "rtpmgr_crates.bbclass"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
# The licences are those of the crates linked on ANY target the layer may be built for, so they do
# not depend on MACHINE: the union of every Linux target meta-rust-bin maps OE's architectures to
# (rust_bin-common.bbclass's rust_target(): armv7 with NEON, armv6 "arm" hard and soft float,
# armv5te, aarch64, x86 32 and 64-bit, 32 and 64-bit PowerPC, riscv64; glibc and musl). A crate that
# only one of them links (a cfg(target_arch) dependency) is in every recipe's LICENSE.
TARGETS = [
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-gnueabihf",
    "armv7-unknown-linux-musleabihf",
    "arm-unknown-linux-gnueabi",
    "arm-unknown-linux-gnueabihf",
    "armv5te-unknown-linux-gnueabi",
    "powerpc-unknown-linux-gnu",
    "powerpc64-unknown-linux-gnu",
    "powerpc64le-unknown-linux-gnu",
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "i686-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
]

LAYER = TOP / "meta-rtpmgr"


def rust_recipes() -> dict:
    """recipe -> (workspace package, links dev-dependencies, cargo feature flags), read from every recipe
    of the layer that inherits rtpmgr_crates: its EXTRA_CARGO_FLAGS name the package (--package),
    whether the binary is a test (--test) and the features (--no-default-features, --features)."""
    recipes = {}
    for bb in sorted(LAYER.rglob("*.bb")):
        text = bb.read_text()
        if not re.search(r"^inherit .*\brtpmgr_crates\b", text, re.M):
            continue
        m = re.search(r'^EXTRA_CARGO_FLAGS\s*\+?=\s*"([^"]*)"', text, re.M)
        flags = m.group(1).split() if m else []
        if "--package" not in flags or flags.index("--package") + 1 >= len(flags):
            sys.exit(f"gen-crates-inc: {bb.relative_to(TOP)} inherits rtpmgr_crates but names no --package in "
                     "EXTRA_CARGO_FLAGS: which crates it links is unknown")
        package = flags[flags.index("--package") + 1]
        features = [f for f in flags if f in ("--no-default-features", "--all-features")]
        for i, f in enumerate(flags):
            if f == "--features" and i + 1 < len(flags):
                features += ["--features", flags[i + 1]]
        recipes[bb.name.split("_")[0].removesuffix(".bb")] = (package, "--test" in flags, features)
    return recipes


# Licences the crates use that openembedded-core (scarthgap) ships a text of (meta/files/common-licenses).
# A crate under any other licence stops the generator: add a NO_GENERIC_LICENSE for it first.
COMMON_LICENSES = {"Apache-2.0", "Apache-2.0-with-LLVM-exception", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0",
                   "CC0-1.0", "EUPL-1.2", "ISC", "MIT", "MIT-0", "Unicode-DFS-2016", "Unlicense", "Zlib"}


def spdx_to_bitbake(expr: str, crate: str) -> str:
    """A crate's SPDX licence expression in BitBake's LICENSE syntax (| for OR, & for AND)."""
    expr = expr.replace("Apache-2.0 WITH LLVM-exception", "Apache-2.0-with-LLVM-exception")
    expr = re.sub(r"\s*/\s*", " OR ", expr)  # the old Cargo "MIT/Apache-2.0" form
    out = re.sub(r"\bOR\b", "|", re.sub(r"\bAND\b", "&", expr))
    for name in re.findall(r"[A-Za-z0-9.+-]+", out):
        if name not in COMMON_LICENSES:
            sys.exit(f"gen-crates-inc: {crate} is under {name}, which openembedded-core has no text of: "
                     "add the crate's licence file as NO_GENERIC_LICENSE, then to COMMON_LICENSES here")
    if "&" not in out and "(" not in out:
        out = " | ".join(sorted(part.strip() for part in out.split("|")))  # MIT | Apache-2.0 == Apache-2.0 | MIT
    return f"({out})" if ("|" in out or "&" in out) else out


def crate_licenses(manifest: pathlib.Path) -> dict:
    """recipe -> BitBake licence expression of every crates.io crate its binary links: the normal
    dependencies on any of TARGETS (plus the package's dev-dependencies for a test), without
    proc-macros and build scripts, which run on the build host and are not linked."""
    def metadata(flags):
        try:
            platforms = [arg for target in TARGETS for arg in ("--filter-platform", target)]
            out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"] + platforms +
                                 ["--manifest-path", str(manifest)] + flags,
                                 capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"gen-crates-inc: cargo metadata for {manifest} failed: {getattr(e, 'stderr', e)}")
        return json.loads(out)

    result = {}
    for recipe, (package, with_dev, flags) in rust_recipes().items():
        meta = metadata(flags)
        pkgs = {p["id"]: p for p in meta["packages"]}
        nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
        by_name = {p["name"]: p["id"] for p in meta["packages"] if p["source"] is None}

        def proc_macro(pid):
            libs = [t for t in pkgs[pid]["targets"] if "lib" in t["kind"] or "proc-macro" in t["kind"]]
            return bool(libs) and all("proc-macro" in t["kind"] for t in libs)

        if package not in by_name:
            sys.exit(f"gen-crates-inc: recipe {recipe} builds --package {package}, which is not a member of {manifest}")
        root = by_name[package]
        seen, todo = set(), [root]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            for dep in nodes[pid]["deps"]:
                kinds = {k["kind"] for k in dep["dep_kinds"]}
                if None in kinds or (with_dev and pid == root and "dev" in kinds):
                    if not proc_macro(dep["pkg"]):
                        todo.append(dep["pkg"])
        exprs = set()
        for pid in seen:
            p = pkgs[pid]
            if p["source"] is None:
                continue  # a workspace member: rtpmgr's own licence, in the recipe
            if not p.get("license"):
                sys.exit(f"gen-crates-inc: {p['name']} {p['version']} declares no licence expression")
            exprs.add(spdx_to_bitbake(p["license"], p["name"]))
        result[recipe] = (" & ".join(sorted(exprs)), len([p for p in seen if pkgs[p]["source"]]))
    return result


def render(lock_path: pathlib.Path, manifest: pathlib.Path) -> str:
    try:
        lock = tomllib.loads(lock_path.read_text())
    except FileNotFoundError:
        sys.exit(f"gen-crates-inc: {lock_path} not found: run `cargo generate-lockfile` in crates/ first")
    except tomllib.TOMLDecodeError as e:
        sys.exit(f"gen-crates-inc: {lock_path} is not valid TOML: {e}")

    crates = []
    for pkg in lock.get("package", []):
        source = pkg.get("source")
        if source is None:
            continue  # a workspace member (path dependency): it is part of the git checkout
        name, version = pkg["name"], pkg["version"]
        if source != CRATES_IO:
            sys.exit(f"gen-crates-inc: {name} {version} comes from '{source}'; only crates.io "
                     "crates can be fetched with a verified checksum. Publish it or vendor it.")
        if "checksum" not in pkg:
            sys.exit(f"gen-crates-inc: {name} {version} has no checksum in {lock_path}")
        crates.append((name, version, pkg["checksum"]))
    crates.sort()

    out = [
        "# rtpmgr_crates: generated by scripts/gen-crates-inc.py from crates/Cargo.lock: do not edit.",
        "# Every crates.io crate the workspace builds with, fetched in do_fetch and checked against",
        "# the sha256 from Cargo.lock, so that do_compile needs no network (cargo_bin_offline.bbclass).",
        "",
        'SRC_URI += "\\',
    ]
    out += [f"    crate://crates.io/{n}/{v} \\" for n, v, _ in crates]
    out += ['"', ""]
    out += [f'SRC_URI[{n}-{v}.sha256sum] = "{c}"' for n, v, c in crates]
    out += [
        "",
        "# The Cargo.lock this list was generated from: cargo_bin_offline.bbclass stops do_configure when",
        "# the fetched commit's crates/Cargo.lock differs (a layer and a source commit that do not match).",
        f'RTPMGR_CARGO_LOCK_SHA256 = "{hashlib.sha256(lock_path.read_bytes()).hexdigest()}"',
        "",
        "# The licences of the crates each Rust recipe links statically (normal dependencies, proc-macros",
        "# and build scripts left out) on any of these targets, so that they hold for every MACHINE:",
    ]
    out += [f"#   {' '.join(TARGETS[i:i + 3])}" for i in range(0, len(TARGETS), 3)]
    out += [
        "# The recipes add them to their LICENSE, so that the packages and the SPDX documents name every",
        "# licence in the binaries.",
    ]
    for recipe, (expr, count) in crate_licenses(manifest).items():
        out.append(f"# {recipe}: {count} crates")
        out.append(f'RTPMGR_CRATES_LICENSE[{recipe}] = "{expr}"')
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--lock", type=pathlib.Path, default=LOCK, help=f"default: {LOCK}")
    ap.add_argument("--output", type=pathlib.Path, default=INC, help=f"default: {INC}")
    ap.add_argument("--manifest-path", type=pathlib.Path, default=None,
                    help="the workspace's Cargo.toml for the licences (default: next to --lock)")
    args = ap.parse_args()

    text = render(args.lock, args.manifest_path or args.lock.parent / "Cargo.toml")
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"gen-crates-inc: {args.output} is out of date with {args.lock}: "
                  "run scripts/gen-crates-inc.py and commit meta-rtpmgr/classes-recipe/rtpmgr_crates.bbclass", file=sys.stderr)
            return 1
        print(f"gen-crates-inc: {args.output.name} matches {args.lock.name} "
              f"({text.count('crate://')} crates)")
        return 0
    args.output.write_text(text)
    print(f"gen-crates-inc: wrote {args.output} ({text.count('crate://')} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
