# rtpmgr_user: the unprivileged account of the rtpmgr services, defined once for every package
# that needs it.
#
# Group rtpmgr owns /dev/rtp_mgr* (60-rtp-mgr.rules, mode 0660); user rtpmgr runs rtp-rx and
# rtp-feeder. Each package that needs the account (the module's, for the udev rule, and the two
# services') creates it from this one definition; useradd skips an account that already exists,
# so the install order does not matter.

inherit useradd

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system rtpmgr"
# No login shell: nothing logs in as rtpmgr. Home /var/lib/rtpmgr, the services' state directory
# (the QEMU harness creates the same account in test/qemu/install-artifacts.sh).
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/rtpmgr --create-home --shell /sbin/nologin --gid rtpmgr rtpmgr"
