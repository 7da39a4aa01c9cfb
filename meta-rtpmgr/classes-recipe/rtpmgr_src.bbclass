# rtpmgr_src: where every rtpmgr recipe takes its sources from.
#
# Default: the git repository that contains this layer (RTPMGR_TOPDIR, set in layer.conf), fetched
# with protocol=file at the commit CHECKED OUT there (detached HEAD, tag, CI merge ref or branch
# alike: nobranch=1). A product that pins rtpmgr by commit in its kas file builds exactly that
# commit; two builds of one commit are identical. Fetching a file:// git repository needs no
# network, even with BB_NO_NETWORK = "1". Uncommitted edits are not built (kas/local-src.yml is
# for those). The commit must be on some branch or tag: BitBake fetches refs, not loose commits.
# Where the checkout is does not reach the task signatures (layer.conf lists RTPMGR_TOPDIR in
# BB_BASEHASH_IGNORE_VARS; the git fetcher adds only the commit, bb.fetch2.get_hashvalue), so two
# workspaces at one commit share sstate. The git fetcher still names its clone in DL_DIR after the
# path (git2/<path with dots>), and so a mirror tarball (BB_GENERATE_MIRROR_TARBALLS): a shared
# DL_DIR keeps one clone per checkout. Builds that publish a source mirror use a server, below.
#
# Releases built from a server set, in local.conf or their distro (nothing then depends on a
# checkout on the build host, and no host path reaches SRC_URI or the SPDX documents):
#   RTPMGR_GIT_URI = "git://git.example.com/rtpmgr.git;protocol=https;branch=main"
#   RTPMGR_SRCREV = "<40-hex commit>"
# Developers who want the working tree, uncommitted edits included, use kas/local-src.yml, which
# switches the recipes to externalsrc on RTPMGR_TOPDIR.

# RTPMGR_VERSION and RTPMGR_SRCREV (empty: the checked-out commit of RTPMGR_TOPDIR, found at
# parse time; a copy of the layer outside a checkout skips the recipes with the reason).
inherit rtpmgr_version

RTPMGR_GIT_URI ??= "git://${RTPMGR_TOPDIR};protocol=file;nobranch=1"

# "+git" makes BitBake append the short commit to PKGV.
PV = "${RTPMGR_VERSION}+git"

SRC_URI:prepend = "${RTPMGR_GIT_URI} "
SRCREV = "${RTPMGR_SRCREV}"

# The whole repository: recipes pick their subdirectory (kernel/, crates/, test/device/) so that
# shared files such as include/rtp_mgr_ioctl.h stay where the sources expect them.
S = "${WORKDIR}/git"
