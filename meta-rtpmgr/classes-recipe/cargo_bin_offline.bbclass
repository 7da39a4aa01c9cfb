# cargo_bin_offline: build a meta-rust-bin cargo_bin recipe without network access in do_compile.
#
# meta-rust-bin lets cargo download crates during do_compile (do_compile[network] = "1"), which
# breaks BB_NO_NETWORK builds, source mirrors and license/CVE tooling that reads SRC_URI. Instead
# the recipe lists every crate of Cargo.lock as a crate:// SRC_URI entry with its sha256 (the list
# is generated: scripts/gen-crates-inc.py). BitBake's crate fetcher downloads them in do_fetch,
# mirrors them like any other download, and in do_unpack extracts each one to
# ${WORKDIR}/cargo_home/bitbake/<name>-<version>/ together with the .cargo-checksum.json that cargo
# expects of a directory source. This class tells cargo to take crates.io from that directory and
# never to touch the network; cargo still checks every crate against the checksum in Cargo.lock.
#
# cargo_bin knows nothing of crate:// downloads, so this is the only glue needed:
#   inherit cargo_bin cargo_bin_offline rtpmgr_crates
# (rtpmgr_crates.bbclass is the generated crate list.)

# Where BitBake's crate fetcher unpacks: <unpack root>/cargo_home/bitbake (bb.fetch2.crate). The
# unpack root is WORKDIR in scarthgap and UNPACKDIR from styhead on.
CARGO_VENDOR_DIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/cargo_home/bitbake"

# --frozen: fail instead of updating Cargo.lock or reaching for the network. A stale generated .inc
# shows up as "no matching package" here, not as a silent download.
EXTRA_CARGO_FLAGS:append = " --frozen"

# The crate list (rtpmgr_crates.bbclass) is generated from one Cargo.lock; the sources come from
# a commit that may carry another (the layer of one checkout, RTPMGR_SRCREV of another). Refuse
# that pair with both names instead of failing later inside cargo with "no matching package".
do_configure:prepend() {
    lock=$(dirname "${CARGO_MANIFEST_PATH}")/Cargo.lock
    if [ -n "${RTPMGR_CARGO_LOCK_SHA256}" ] &&
        [ "$(sha256sum "$lock" | cut -d' ' -f1)" != "${RTPMGR_CARGO_LOCK_SHA256}" ]; then
        bbfatal "$lock (commit ${SRCREV}) is not the Cargo.lock the layer's crate list was generated from (sha256 ${RTPMGR_CARGO_LOCK_SHA256}): build a layer and a source commit of the same checkout, or run scripts/gen-crates-inc.py"
    fi
}

do_configure:append() {
    # cargo_bin points CARGO_HOME at ${WORKDIR}/cargo_home; its config.toml applies to this build only.
    mkdir -p "${CARGO_VENDOR_DIR}"
    printf '%s\n' \
        '[source.crates-io]' \
        'replace-with = "bitbake"' \
        '' \
        '[source.bitbake]' \
        'directory = "${CARGO_VENDOR_DIR}"' \
        '' \
        '[net]' \
        'offline = true' > "${CARGO_HOME}/config.toml"
}

# Spelled out although it is BitBake's default: cargo_bin's README tells recipes to set it to "1".
do_compile[network] = "0"

# No build paths in the binaries and the -dbg packages (QA check buildpaths, and reproducible
# builds): everything rustc compiles here is below WORKDIR (the checkout, the crates unpacked by
# the crate fetcher, the toolchain's sysroot), mapped to the -src package's path as oe-core's
# own flags map C sources (DEBUG_PREFIX_MAP).
EXTRA_RUSTFLAGS:append = " --remap-path-prefix=${WORKDIR}=${TARGET_DBGSRC_DIR}"

# Leave stripping to BitBake, which splits the debug information into -dbg packages: a binary that
# cargo already stripped (a workspace profile with strip = "symbols") fails the already-stripped
# package QA check. Cargo reads profile settings from CARGO_PROFILE_<PROFILE>_<KEY>, which override
# Cargo.toml.
export CARGO_PROFILE_RELEASE_STRIP = "false"
