# rtpmgr_signing: the RAUC signing files of an A/B build (DISTRO_FEATURES "rtpmgr-ab"), checked
# whenever the configuration is parsed, before any recipe is. Inherited globally by conf/layer.conf; it only reads variables.
#
#   - a signing file that does not exist stops the build with the command that makes the development
#     CA, instead of meta-rauc's rauc-conf failing later with a bare "Unable to get checksum ...";
#   - a build signed with the development CA (meta-rauc's openssl-ca.sh, whose private key sits in the
#     build directory) says so in a warning on every run, as meta-rauc warns about its example CA.

# Where kas/rauc.yml and docs/ota.md put meta-rauc's development CA.
RTPMGR_DEVELOPMENT_CA_DIR ?= "${TOPDIR}/openssl-ca/dev"

addhandler rtpmgr_signing_check
# ConfigParsed: on every configuration parse, so also when every recipe comes from the parse cache.
rtpmgr_signing_check[eventmask] = "bb.event.ConfigParsed"
python rtpmgr_signing_check() {
    import os
    # Once per command, in the server: not again in every bitbake-worker that parses the configuration.
    if d.getVar('BB_WORKERCONTEXT') or not bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', True, False, d):
        return
    names = ['RAUC_KEYRING_FILE', 'RAUC_KEY_FILE', 'RAUC_CERT_FILE']
    how = ("for a development CA run meta-rauc's scripts/openssl-ca.sh in the build directory %s "
           "(docs/ota.md), or point the variables at your release CA and key"
           % d.getVar('TOPDIR'))
    unset = [n for n in names if not d.getVar(n)]
    if unset:
        bb.fatal("rtpmgr A/B build (DISTRO_FEATURES rtpmgr-ab): %s not set; %s" % (', '.join(unset), how))
    # Absolute paths are files on the build host; a relative keyring is looked up in FILESPATH.
    missing = ['%s = %s' % (n, d.getVar(n)) for n in names
               if os.path.isabs(d.getVar(n)) and not d.getVar(n).startswith('pkcs11:')
               and not os.path.exists(d.getVar(n))]
    if missing:
        bb.fatal("rtpmgr A/B build: the RAUC signing files do not exist: %s; %s" % ('; '.join(missing), how))
    devdir = os.path.realpath(d.getVar('RTPMGR_DEVELOPMENT_CA_DIR')) + os.sep
    dev = [n for n in names if os.path.realpath(d.getVar(n)).startswith(devdir)]
    if dev:
        bb.warn("rtpmgr A/B build signed with the DEVELOPMENT CA in %s (%s): its private key is on this "
                "build host; bundles and images built so are for development only, never for products "
                "(docs/ota.md, Signing)" % (d.getVar('RTPMGR_DEVELOPMENT_CA_DIR'), ', '.join(dev)))
}
