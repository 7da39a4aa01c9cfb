# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "rtp_mgr: zero-copy RTP ring buffer kernel module"
DESCRIPTION = "Out-of-tree kernel module providing /dev/rtp_mgrN ring channels shared by \
               rtp_app and rtp-feeder, with the udev rule that gives the devices to group rtpmgr and the \
               module options loaded at boot."
SECTION = "kernel/modules"
# Not in the NVD; without this, cve-check would match the recipe name against other products.
CVE_PRODUCT = "rtpmgr"
LICENSE = "GPL-2.0-only"
# The SPDX line of the UAPI header states the terms (with the Linux-syscall-note for programs
# that include it); LICENSES/ holds the full text.
LIC_FILES_CHKSUM = "file://include/rtp_mgr_ioctl.h;beginline=1;endline=1;md5=3984933679b5478fa7c1231c3b82e066 \
                    file://LICENSES/GPL-2.0-only.txt;md5=b234ee4d69f5fce4486a80fdaf4a4263"

# rtpmgr_install: the udev rule, from files/install.manifest (the QEMU harness installs the very
# same file from the same list).
inherit module rtpmgr_src rtpmgr_user rtpmgr_install

# The module options exist once, here (module_conf_rtp_mgr below reads them; the QEMU harness
# installs the very same file).
SRC_URI += "file://rtp_mgr.conf"

# Build with Kbuild directly (kernel/Kbuild): -C <kernel> M=<dir> is the interface every
# out-of-tree module shares, so this works whatever the convenience Makefile in kernel/ expects.
# kernel/ includes ../include/rtp_mgr_ioctl.h, which is why S is the whole repository.
EXTRA_OEMAKE += "-C ${STAGING_KERNEL_DIR} M=${S}/kernel"
MAKE_TARGETS = "modules"
MODULES_INSTALL_TARGET = "modules_install"
# Kbuild writes Module.symvers next to the module (below B, which is S); module.bbclass stages it.
MODULES_MODULE_SYMVERS_LOCATION = "kernel"

# Load at boot (/etc/modules-load.d/rtp_mgr.conf) with the options of files/rtp_mgr.conf, written to
# /etc/modprobe.d/rtp_mgr.conf by kernel-module-split. The options are read from that file so that
# they are defined once.
KERNEL_MODULE_AUTOLOAD += "rtp_mgr"
KERNEL_MODULE_PROBECONF += "rtp_mgr"
module_conf_rtp_mgr = "${@rtpmgr_modprobe_conf(d)}"

def rtpmgr_modprobe_conf(d):
    import os
    path = os.path.join(d.getVar('THISDIR'), 'files', 'rtp_mgr.conf')
    # Re-parse this recipe when the options change.
    bb.parse.mark_dependency(d, path)
    with open(path) as f:
        return '\n'.join(l.strip() for l in f if l.strip() and not l.startswith('#'))

FILES:${PN} += "${nonarch_base_libdir}/udev/rules.d/60-rtp-mgr.rules"

# No RPROVIDES of kernel-module-rtp-mgr here: kernel-module-split names the package of rtp_mgr.ko
# kernel-module-rtp-mgr-<kernel version> and already lets it RPROVIDE kernel-module-rtp-mgr
# (KERNEL_MODULE_PROVIDE_VIRTUAL); this package providing it too would make two providers.
