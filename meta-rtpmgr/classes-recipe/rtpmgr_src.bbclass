# rtpmgr_src: where every rtpmgr recipe takes its sources from.
#
# Default: the git repository that contains this layer (RTPMGR_TOPDIR, set in layer.conf), fetched
# with protocol=file at the newest commit of RTPMGR_BRANCH. Fetching a file:// git repository needs
# no network, even with BB_NO_NETWORK = "1", and builds exactly what is committed, so two builds of
# one commit are identical.
#
# Integrators who build a released rtpmgr set, in local.conf or their distro:
#   RTPMGR_GIT_URI = "git://git.example.com/rtpmgr.git;protocol=https"
#   RTPMGR_BRANCH = "main"
#   RTPMGR_SRCREV = "<40-hex commit>"
# Developers who want the working tree, uncommitted edits included, use kas/local-src.yml, which
# switches the recipes to externalsrc on RTPMGR_TOPDIR.

RTPMGR_GIT_URI ??= "git://${RTPMGR_TOPDIR};protocol=file"
RTPMGR_BRANCH ??= "main"
RTPMGR_SRCREV ??= "${AUTOREV}"

# "+git" makes BitBake append the short commit to PV.
PV = "0.1.0+git"

SRC_URI:prepend = "${RTPMGR_GIT_URI};branch=${RTPMGR_BRANCH} "
SRCREV = "${RTPMGR_SRCREV}"

# The whole repository: recipes pick their subdirectory (kernel/, crates/, test/device/) so that
# shared files such as include/rtp_mgr_ioctl.h stay where the sources expect them.
S = "${WORKDIR}/git"
