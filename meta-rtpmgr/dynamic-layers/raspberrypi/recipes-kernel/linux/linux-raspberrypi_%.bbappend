# The kernel of rtpmgr's A/B system on a Raspberry Pi: RAUC's kernel options (dm-verity, squashfs,
# loop), as meta-rauc-community's raspberrypi layer adds them. The device tree stays the
# firmware's (boot.scr boots ${fdt_addr}, with config.txt's overlays applied), so the kernel's
# device tree layout is left as meta-raspberrypi has it. Without DISTRO_FEATURES "rtpmgr-ab"
# (conf/include/rtpmgr-ab.inc) this file changes nothing.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'recipes-kernel/linux/linux-rtpmgr-ab.inc', '', d)}
