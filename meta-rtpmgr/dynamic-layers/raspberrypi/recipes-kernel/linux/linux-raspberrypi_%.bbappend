# RAUC's kernel options (dm-verity, squashfs, loop) for A/B builds on a Raspberry Pi, as
# meta-rauc-community's raspberrypi layer adds them: without DISTRO_FEATURES "rtpmgr-ab"
# (conf/include/rtpmgr-ab.inc) this file changes nothing.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'recipes-kernel/linux/linux-rtpmgr-ab.inc', '', d)}
