# SPDX-License-Identifier: MIT
#
# Which commit of the rtpmgr repository the recipes build by default (rtpmgr_src.bbclass).
#
# The layer lives inside the repository it builds. Without a pinned RTPMGR_SRCREV the recipes build
# the commit that is checked out there: the commit a product's kas file pinned, a tag, a CI merge
# ref or a detached HEAD all build what was checked out, never "the newest commit of some branch".

import os
import subprocess


class SourceError(Exception):
    """The layer is not inside a git checkout of rtpmgr, or its HEAD cannot be used."""


def _git(topdir, *args):
    try:
        out = subprocess.run(['git', '-C', topdir] + list(args), check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise SourceError('git is not installed on the build host') from e
    except subprocess.CalledProcessError as e:
        raise SourceError('git %s in %s failed: %s' % (' '.join(args), topdir, e.stderr.strip())) from e
    return out.stdout.strip()


def checked_out_commit(topdir):
    """The 40-hex commit checked out in topdir (HEAD, detached or not)."""
    if not os.path.isdir(topdir):
        raise SourceError('%s does not exist' % topdir)
    try:
        inside = _git(topdir, 'rev-parse', '--show-toplevel')
    except SourceError as e:
        raise SourceError('meta-rtpmgr is not inside a git checkout of rtpmgr (%s): set RTPMGR_GIT_URI '
                          'and RTPMGR_SRCREV to a released commit, see docs/yocto.md' % e) from e
    if os.path.realpath(inside) != os.path.realpath(topdir):
        raise SourceError('%s is not the top of a git checkout (that is %s): meta-rtpmgr must be the '
                          'meta-rtpmgr/ directory of an rtpmgr checkout, or set RTPMGR_GIT_URI and '
                          'RTPMGR_SRCREV' % (topdir, inside))
    return _git(topdir, 'rev-parse', '--verify', 'HEAD^{commit}')


def reachable_from_a_ref(topdir, commit):
    """True if a branch, tag or other ref contains commit: only those are fetched (refs/*)."""
    return bool(_git(topdir, 'for-each-ref', '--count=1', '--contains', commit, '--format=%(refname)'))


def head_files(topdir):
    """The files whose change moves HEAD (checkout, commit, fetch + reset): BitBake re-parses the
    recipes when one of them changes, so a cached parse never builds a stale commit."""
    def git_path(name):
        # Relative to topdir unless absolute (--path-format=absolute needs git 2.31).
        return os.path.join(topdir, _git(topdir, 'rev-parse', '--git-path', name))

    files = [git_path('HEAD'), git_path('packed-refs')]
    try:
        ref = _git(topdir, 'symbolic-ref', '-q', 'HEAD')
    except SourceError:
        ref = ''  # detached HEAD: the commit is in HEAD itself
    if ref:
        files.append(git_path(ref))
    return [f for f in files if os.path.exists(f)]
