# The kernel of rtpmgr's A/B system on a Raspberry Pi: RAUC's kernel options (dm-verity, squashfs,
# loop), as meta-rauc-community's raspberrypi layer adds them, and the device trees where boot.scr
# loads them from (linux-raspberrypi-rtpmgr-ab.inc). Without DISTRO_FEATURES "rtpmgr-ab"
# (conf/include/rtpmgr-ab.inc) this file changes nothing.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'dynamic-layers/raspberrypi/recipes-kernel/linux/linux-raspberrypi-rtpmgr-ab.inc', '', d)}
