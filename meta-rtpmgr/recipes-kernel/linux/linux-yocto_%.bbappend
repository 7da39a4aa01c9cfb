# RAUC's kernel options (dm-verity, squashfs, loop) for A/B builds only: without DISTRO_FEATURES
# "rtpmgr-ab" (conf/include/rtpmgr-ab.inc) this file changes nothing.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'linux-rtpmgr-ab.inc', '', d)}
