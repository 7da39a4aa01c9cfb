# nooelint: oelint.var.override - rtpmgr-image-dev.bb requires this recipe and names itself
SUMMARY = "rtpmgr appliance image"
# nooelint: oelint.var.override - as SUMMARY
DESCRIPTION = "The product image: it receives RTP into the rtp_mgr zero-copy ring and feeds it to \
               GStreamer: the rtp_mgr module (loaded at boot), rtp-feeder with its service (it receives on the \
               kernel-attached path itself), rtp_app (its rtp-rx service, idle while feeder.toml has [receive]) and the \
               GStreamer plugins of the default pipelines. No test suite, no SSH server: \
               those are in rtpmgr-image-dev."
SECTION = "image"
LICENSE = "MIT"
# An image has no sources of its own: the common MIT text, as oe-core's images do.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit core-image

# GStreamer for the default pipelines (feeder.toml and docs/yocto.md):
#   gstreamer1.0: coreelements (fakesink, queue, capsfilter) and gst-launch-1.0/gst-inspect-1.0
#     for on-device diagnostics (oe-core packages the tools in the main package)
#   gstreamer1.0-plugins-base-app: appsrc/appsink (rtp-feeder itself)
#   gstreamer1.0-plugins-good-rtpmanager: rtpjitterbuffer
#   gstreamer1.0-plugins-good-rtp: rtp*pay/rtp*depay, for tx pipelines and playback examples
#   gstreamer1.0-plugins-good-udp: udpsrc/udpsink, to compare with the ring path
RTPMGR_GSTREAMER = "\
    gstreamer1.0 \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-udp \
"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    ${CORE_IMAGE_EXTRA_INSTALL} \
    rtp-mgr \
    rtp-app \
    rtp-feeder \
    gstreamer1.0-plugin-rtpmgr \
    ${RTPMGR_GSTREAMER} \
"

# Room for logs and captures on the device.
IMAGE_ROOTFS_EXTRA_SPACE = "65536"

# Read-only root filesystem (IMAGE_FEATURES read-only-rootfs), off by default: set
# RTPMGR_READ_ONLY_ROOTFS = "1" in local.conf. What changes at run time is on /data (rtpmgr-data:
# configuration, logs; RAUC's data directory) or in tmpfs (/run, /var/volatile); RAUC mounts
# bundles below /run (system.conf). The OTA scenarios (test/ota) run every update with / read-only.
RTPMGR_READ_ONLY_ROOTFS ??= "0"
IMAGE_FEATURES += "${@'read-only-rootfs' if bb.utils.to_boolean(d.getVar('RTPMGR_READ_ONLY_ROOTFS')) else ''}"

# The A/B image for RAUC updates (conf/include/rtpmgr-ab.inc, kas/rauc.yml).
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'rtpmgr-image-ab.inc', '', d)}
# AppArmor profiles of rtp_app and rtp-feeder (conf/include/rtpmgr-apparmor.inc, needs meta-security).
IMAGE_INSTALL += "${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-apparmor', 'rtpmgr-apparmor', '', d)}"
# SELinux (conf/include/rtpmgr-selinux.inc, needs meta-selinux): meta-selinux's minimal userland (it
# brings refpolicy) and the module of rtp_app and rtp-feeder, linked into the policy when the root
# filesystem is made; selinux-image (meta-selinux) then labels the root filesystem with that policy.
IMAGE_INSTALL += "${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-selinux', 'packagegroup-selinux-minimal rtpmgr-selinux', '', d)}"
inherit_defer ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-selinux', 'selinux-image', '', d)}
