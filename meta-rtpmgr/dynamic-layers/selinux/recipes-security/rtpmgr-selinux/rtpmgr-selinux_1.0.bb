# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "SELinux policy module confining rtp_app and rtp-feeder"
DESCRIPTION = "The refpolicy module rtpmgr: domains rtpmgr_t (rtp_app) and rtpmgr_feeder_t \
               (rtp-feeder), types for the rtp_mgr ring devices, shm rings, /etc/rtpmgr, \
               /var/log/rtpmgr and /var/cache/rtpmgr. Compiled against the headers of the \
               refpolicy the build uses and linked into its policy store when the image is \
               built, so the root filesystem is labelled with it. Built only with \
               DISTRO_FEATURES selinux and rtpmgr-selinux (conf/include/rtpmgr-selinux.inc); \
               see docs/security.md."
SECTION = "security"
LICENSE = "MIT"
# The policy sources are this layer's own files (MIT): the common licence text is the reference.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit features_check
REQUIRED_DISTRO_FEATURES = "selinux rtpmgr-selinux"

# refpolicy's headers (its -dev files staged in the sysroot: ${datadir}/selinux/<policy>/include with
# the module Makefile, refpolicy_common.inc's install_misc_files) and the tools the Makefile and the
# policy store need, as refpolicy_common.inc has them: checkmodule, semodule_package, m4, the pp
# to CIL converter (policycoreutils' hll) and bzip2 for the store's compressed files.
DEPENDS += "\
    bzip2-replacement-native \
    checkpolicy-native \
    m4-native \
    policycoreutils-native \
    semodule-utils-native \
    virtual/refpolicy \
"
EXTRANATIVEPATH += "bzip2-native"
# Nothing is compiled for the target: no cross toolchain, no C library.
INHIBIT_DEFAULT_DEPS = "1"

SRC_URI = "\
    file://rtpmgr.te \
    file://rtpmgr.fc \
    file://rtpmgr.if \
"
S = "${WORKDIR}"
# The policy Makefile takes every directory next to the module for a policy layer: build in one
# that holds nothing else.
B = "${WORKDIR}/build"

# The policy the module is built for and linked into: meta-selinux's refpolicy recipes are
# refpolicy-<POLICY_NAME> (targeted, mcs, mls, standard, minimum), its layer.conf selects one with
# PREFERRED_PROVIDER_virtual/refpolicy (default refpolicy-targeted).
RTPMGR_SELINUX_POLICY ?= "${@(d.getVar('PREFERRED_PROVIDER_virtual/refpolicy') or 'refpolicy-targeted').replace('refpolicy-', '', 1)}"
# Priority of the module in the policy store: refpolicy's own modules are at 100, `semodule -i`
# of an administrator at 400; 200 is the priority distributions ship add-on modules at.
RTPMGR_SELINUX_PRIORITY ?= "200"

# Built against one machine's policy (refpolicy is MACHINE_ARCH).
PACKAGE_ARCH = "${MACHINE_ARCH}"

do_compile() {
    headers=${STAGING_DATADIR}/selinux/${RTPMGR_SELINUX_POLICY}/include
    if [ ! -f "$headers/Makefile" ]; then
        bbfatal "no refpolicy headers for policy '${RTPMGR_SELINUX_POLICY}' in $headers: is RTPMGR_SELINUX_POLICY the POLICY_NAME of PREFERRED_PROVIDER_virtual/refpolicy (${PREFERRED_PROVIDER_virtual/refpolicy})?"
    fi
    cp ${S}/rtpmgr.te ${S}/rtpmgr.fc ${S}/rtpmgr.if ${B}/
    # refpolicy's support/Makefile.devel, installed as include/Makefile with the policy's build.conf
    # (TYPE, DISTRO, SYSTEMD, MLS settings). NAME given: its default reads the build host's
    # /etc/selinux/config. BINDIR, not CHECKMODULE: the Makefile appends -M to CHECKMODULE for an
    # MCS or MLS policy, which a command-line CHECKMODULE would override.
    oe_runmake -f "$headers/Makefile" NAME=${RTPMGR_SELINUX_POLICY} HEADERDIR="$headers" \
        BINDIR=${STAGING_BINDIR_NATIVE} SBINDIR=${STAGING_SBINDIR_NATIVE} QUIET=n rtpmgr.pp
    # The policy store holds a module as CIL: convert it here, as refpolicy_common.inc's
    # prepare_policy_store does for refpolicy's own modules.
    ${STAGING_DIR_NATIVE}${libexecdir_native}/selinux/hll/pp ${B}/rtpmgr.pp ${B}/rtpmgr.cil
}

do_install() {
    install -d ${D}${datadir}/selinux/${RTPMGR_SELINUX_POLICY}
    install -m 0644 ${B}/rtpmgr.pp ${D}${datadir}/selinux/${RTPMGR_SELINUX_POLICY}/rtpmgr.pp
    # The module's entry in the policy store, laid out as libsemanage keeps it (and as
    # prepare_policy_store writes refpolicy's): the language, the CIL and the package, compressed.
    moddir=${D}${localstatedir}/lib/selinux/${RTPMGR_SELINUX_POLICY}/active/modules/${RTPMGR_SELINUX_PRIORITY}/rtpmgr
    install -d $moddir
    printf pp >$moddir/lang_ext
    bzip2 --stdout ${B}/rtpmgr.cil >$moddir/cil
    bzip2 --stdout ${B}/rtpmgr.pp >$moddir/hll
    chmod 0644 $moddir/lang_ext $moddir/cil $moddir/hll
}

FILES:${PN} += "\
    ${datadir}/selinux/${RTPMGR_SELINUX_POLICY}/rtpmgr.pp \
    ${localstatedir}/lib/selinux/${RTPMGR_SELINUX_POLICY}/active/modules/${RTPMGR_SELINUX_PRIORITY}/rtpmgr \
"

# The module is in the store; the policy (policy.33, file_contexts) is linked from the store. In the
# image being built ($D set, do_rootfs) with the build host's semodule, as refpolicy_common.inc's
# rebuild_policy links refpolicy's store: a semanage.conf that names the native setfiles and
# sefcontext_compile, "semodule -n -B" (build, do not load). meta-selinux's selinux-image class then
# labels the root filesystem with the file contexts that include this module's. A failure here fails
# do_rootfs (a postinst may not be deferred to a read-only root filesystem). On a running system
# (opkg install), semodule rebuilds and loads the policy and restorecon labels what exists.
# Caveat: "semodule -B" at build time rewrites files that belong to the refpolicy package (policy.33,
# file_contexts, the store's linked copies). A later package upgrade of refpolicy on the device
# (opkg) puts refpolicy's own versions back, without rtpmgr, until "semodule -B" runs again: after
# such an upgrade, run "semodule -B && restorecon -R <the paths below>" (docs/security.md). A RAUC
# update replaces the whole root filesystem and is not affected.
pkg_postinst:${PN}() {
if [ -n "$D" ]; then
    conf=$D${sysconfdir}/selinux/semanage.conf
    if [ -e "$conf" ]; then
        mv "$conf" "$conf.rtpmgr-selinux"
    fi
    printf '%s\n' 'module-store = direct' '[setfiles]' \
        "path = $NATIVE_ROOT${base_sbindir_native}/setfiles" 'args = -q -c $@ $<' '[end]' \
        '[sefcontext_compile]' "path = $NATIVE_ROOT${sbindir_native}/sefcontext_compile" 'args = $@' \
        '[end]' '' 'policy-version = 33' >"$conf"
    rc=0
    $NATIVE_ROOT${base_sbindir_native}/semodule -p $D -s ${RTPMGR_SELINUX_POLICY} -n -B || rc=$?
    rm -f "$conf"
    if [ -e "$conf.rtpmgr-selinux" ]; then
        mv "$conf.rtpmgr-selinux" "$conf"
    fi
    rm -rf $D${localstatedir}/lib/selinux/final
    exit $rc
fi
semodule -B
if selinuxenabled; then
    restorecon -R -i ${bindir}/rtp_app ${bindir}/rtp-feeder ${sysconfdir}/rtpmgr \
        ${localstatedir}/log/rtpmgr ${localstatedir}/cache/rtpmgr /dev/rtp_mgr* /run/rtpmgr \
        ${localstatedir}/lib/node_exporter/textfile_collector /data/rtpmgr/etc /data/rtpmgr/log
fi
}

# Removed from a running system: link the policy without the module.
pkg_postrm:${PN}() {
if [ -z "$D" ]; then
    semodule -B
fi
}

# semodule, setfiles and sefcontext_compile of the build host for the postinst in do_rootfs.
PACKAGE_WRITE_DEPS += "policycoreutils-native libselinux-native"

# The policy the module links into, and the tools of the postinst on a running system.
RDEPENDS:${PN} = "libselinux-bin policycoreutils-semodule policycoreutils-setfiles refpolicy"
