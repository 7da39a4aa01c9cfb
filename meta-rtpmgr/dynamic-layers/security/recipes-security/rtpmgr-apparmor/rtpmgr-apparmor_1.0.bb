# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "AppArmor profiles confining rtp_app and rtp-feeder"
DESCRIPTION = "Profiles for /usr/bin/rtp_app and /usr/bin/rtp-feeder: only the rtp_mgr ring devices, \
               shm rings, /etc/rtpmgr, UDP sockets, GStreamer's plugins, the readiness files, \
               /var/log/rtpmgr and an administrator's /tmp/rtpmgr; capabilities only for rtp_app run \
               by root (ctl, top, --xdp). Installed into /etc/apparmor.d, where meta-security's \
               apparmor service loads them at boot. Built only with DISTRO_FEATURES apparmor and \
               rtpmgr-apparmor (conf/include/rtpmgr-apparmor.inc); see docs/security.md."
SECTION = "security"
LICENSE = "MIT"
# The profiles are this layer's own files (MIT): the common licence text is the reference.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit features_check allarch
REQUIRED_DISTRO_FEATURES = "apparmor rtpmgr-apparmor"

SRC_URI = "\
    file://usr.bin.rtp_app \
    file://usr.bin.rtp-feeder \
"
S = "${WORKDIR}"

do_install() {
    install -d ${D}${sysconfdir}/apparmor.d
    install -m 0644 ${S}/usr.bin.rtp_app ${S}/usr.bin.rtp-feeder ${D}${sysconfdir}/apparmor.d/
}

# apparmor_parser and the service that loads /etc/apparmor.d at boot.
RDEPENDS:${PN} = "apparmor"
