# rtpmgr_install: install a package's files as files/install.manifest lists them.
#
# The manifest is the one list of what goes where (files, modes, owners) for the recipes and the
# QEMU harness (test/qemu/install-artifacts.sh). For every line of package ${PN} this class
#   - adds the layer files (layer:PATH) to SRC_URI as file://, so they are fetched and checksummed
#     like any other file of the recipe, and must be in the recipe's own files/ directory;
#   - installs each file in do_install, repository files (repo:PATH) from ${S}.
# Recipes inherit it and write no install lines of their own for these files.

RTPMGR_INSTALL_MANIFEST ?= "${RTPMGR_LAYERDIR}/files/install.manifest"
# The recipe whose lines apply: lines of package ${PN} and ${PN}-<suffix> (a recipe with another name
# may set it).
RTPMGR_INSTALL_PACKAGE ?= "${PN}"

def rtpmgr_install_entries(d):
    import os
    import rtpmgr.manifest
    path = d.getVar('RTPMGR_INSTALL_MANIFEST')
    # Re-parse the recipes when the manifest, or the code that reads it, changes.
    bb.parse.mark_dependency(d, path)
    bb.parse.mark_dependency(d, rtpmgr.manifest.__file__)
    try:
        entries = rtpmgr.manifest.read(path)
    except (OSError, rtpmgr.manifest.ManifestError) as e:
        bb.fatal('rtpmgr_install: %s' % e)
    package = d.getVar('RTPMGR_INSTALL_PACKAGE')
    # The recipe's main package and its others (rtp-mgr-dev): FILES puts each file in its package.
    mine = [e for e in entries if e.package == package or e.package.startswith(package + '-')]
    files_dir = os.path.join(d.getVar('THISDIR'), 'files')
    for e in mine:
        if e.kind == 'layer':
            src = os.path.join(d.getVar('RTPMGR_LAYERDIR'), e.path)
            if os.path.dirname(os.path.realpath(src)) != os.path.realpath(files_dir):
                bb.fatal('rtpmgr_install: %s line %d: %s is not in %s, the files/ of recipe %s'
                         % (path, e.lineno, e.path, files_dir, d.getVar('PN')))
    return mine

def rtpmgr_install_src_uri(d):
    import os
    return ' '.join('file://' + os.path.basename(e.path) for e in rtpmgr_install_entries(d) if e.kind == 'layer')

# systemd units name the programs they run by the recipe's directories, as oe-core's units do:
# @libexecdir@, @bindir@, ... (any destination variable of the manifest) are replaced with this
# build's values when the unit is installed, so a distro with another libexecdir gets a unit that
# runs what the package installed. A placeholder left over stops do_install.
RTPMGR_UNIT_SUFFIXES = ".service .socket .timer .path .mount"

def rtpmgr_install_commands(d):
    import os
    import rtpmgr.manifest
    lines = []
    for e in rtpmgr_install_entries(d):
        src = '${WORKDIR}/' + os.path.basename(e.path) if e.kind == 'layer' else '${S}/' + e.path
        lines.append('install -D -m %s -o %s -g %s "%s" "${D}%s"' % (e.mode, e.owner, e.group, src, e.dest))
        if e.dest.endswith(tuple(d.getVar('RTPMGR_UNIT_SUFFIXES').split())):
            subst = ' '.join("-e 's|@%s@|${%s}|g'" % (v, v) for v in sorted(rtpmgr.manifest.DEFAULT_PATHS)
                             if d.getVar(v) is not None)
            lines.append('sed -i %s "${D}%s"' % (subst, e.dest))
            # Only these names: systemd's own "@system-service" syscall sets must stay.
            names = '|'.join(sorted(rtpmgr.manifest.DEFAULT_PATHS))
            lines.append('! grep -nE "@(%s)@" "${D}%s" || bbfatal "%s: placeholder not replaced (above)"'
                         % (names, e.dest, e.dest))
    return '\n'.join(lines) or 'true'

SRC_URI += "${@rtpmgr_install_src_uri(d)}"

do_install:append() {
    ${@rtpmgr_install_commands(d)}
}

# The manifest's text is no variable, so it never reaches do_install's signature by itself: hash the
# file, or an edited mode, owner or destination would reuse the old package from sstate.
# The same for the reader (lib/rtpmgr/manifest.py), whose rules decide what the lines mean.
do_install[file-checksums] += "${RTPMGR_INSTALL_MANIFEST}:True ${RTPMGR_LAYERDIR}/lib/rtpmgr/manifest.py:True"
