#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# files/install.manifest: what the rtpmgr packages install where (files, modes, owners), read by
# the recipes (rtpmgr_install.bbclass) and by the QEMU harness (test/qemu/install-artifacts.sh,
# through `python3 manifest.py`), so that the image the harness boots and the Yocto image hold the
# same files at the same paths with the same modes.
#
# As a script: manifest.py MANIFEST TOP PACKAGE...  prints "MODE OWNER:GROUP SOURCE DEST" per file
# of those packages, SOURCE an absolute host path, DEST expanded with the default paths below.

import os
import re
import sys

# The destination variables the manifest may use, with the values poky's default distro gives them
# on arm64 (bitbake.conf): what the harness installs to. Anything else is an error.
DEFAULT_PATHS = {
    'sysconfdir': '/etc',
    'bindir': '/usr/bin',
    'libdir': '/usr/lib',
    'libexecdir': '/usr/libexec',
    'includedir': '/usr/include',
    'nonarch_base_libdir': '/lib',
    'systemd_system_unitdir': '/lib/systemd/system',
    'RTPMGR_TESTDIR': '/usr/lib/rtpmgr/tests',
}
KINDS = ('layer', 'repo')


class ManifestError(Exception):
    pass


class Entry:
    def __init__(self, package, mode, owner, group, kind, path, dest, lineno):
        self.package, self.mode, self.owner, self.group = package, mode, owner, group
        self.kind, self.path, self.dest, self.lineno = kind, path, dest, lineno

    def dest_vars(self):
        return re.findall(r'\$\{([^}]+)\}', self.dest)


def parse(text, name='install.manifest'):
    """Entries of the manifest text; ManifestError names the line of the first mistake."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = '%s:%d' % (name, lineno)
        if len(fields) != 5:
            raise ManifestError('%s: expected 5 columns (package mode owner:group source destination), got %d'
                                % (where, len(fields)))
        package, mode, owner, source, dest = fields
        if not re.fullmatch(r'0[0-7]{3}', mode):
            raise ManifestError('%s: mode %r is not four octal digits' % (where, mode))
        if not re.fullmatch(r'[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*', owner):
            raise ManifestError('%s: owner %r is not user:group' % (where, owner))
        kind, _, path = source.partition(':')
        if kind not in KINDS or not path or path.startswith('/') or '..' in path.split('/'):
            raise ManifestError('%s: source %r is not layer:PATH or repo:PATH (relative, no "..")' % (where, source))
        entry = Entry(package, mode, *owner.split(':'), kind, path, dest, lineno)
        unknown = [v for v in entry.dest_vars() if v not in DEFAULT_PATHS]
        if unknown or not dest.startswith('${') and not dest.startswith('/'):
            raise ManifestError('%s: destination %r: use an absolute path built from %s'
                                % (where, dest, ', '.join('${%s}' % v for v in DEFAULT_PATHS)))
        entries.append(entry)
    dests = {}
    for e in entries:
        if e.dest in dests:
            raise ManifestError('%s:%d: %s is also installed by line %d' % (name, e.lineno, e.dest, dests[e.dest]))
        dests[e.dest] = e.lineno
    return entries


def read(path):
    with open(path) as f:
        return parse(f.read(), os.path.basename(path))


def expand_default(dest):
    return re.sub(r'\$\{([^}]+)\}', lambda m: DEFAULT_PATHS[m.group(1)], dest)


def main(argv):
    if len(argv) < 4:
        print('usage: manifest.py MANIFEST TOP PACKAGE...', file=sys.stderr)
        return 2
    manifest, top, packages = argv[1], argv[2], argv[3:]
    try:
        entries = read(manifest)
    except (OSError, ManifestError) as e:
        print('manifest.py: %s' % e, file=sys.stderr)
        return 1
    for e in entries:
        if e.package in packages:
            base = os.path.join(top, 'meta-rtpmgr') if e.kind == 'layer' else top
            print(e.mode, '%s:%s' % (e.owner, e.group), os.path.join(base, e.path), expand_default(e.dest))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
