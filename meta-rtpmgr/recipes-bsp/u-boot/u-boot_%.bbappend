# The U-Boot commands rtpmgr's boot.scr uses (fatwrite above all), for A/B builds only: without
# DISTRO_FEATURES "rtpmgr-ab" (conf/include/rtpmgr-ab.inc) this file changes nothing. Applies to
# poky's u-boot (qemuarm64) and meta-raspberrypi's alike.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'u-boot-rtpmgr-ab.inc', '', d)}
