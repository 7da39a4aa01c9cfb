# rtpmgr_version: the rtpmgr version and commit a recipe builds or ships: RTPMGR_VERSION (the
# release number) and RTPMGR_SRCREV (the commit). rtpmgr_src builds that commit; rtpmgr-bundle
# names its RAUC bundle after it (RAUC_BUNDLE_VERSION), so `rauc status` shows which rtpmgr a slot
# runs, not the distro's version.
#
# RTPMGR_SRCREV set (a release, docs/yocto.md): that commit. Empty (the default): the commit checked
# out in the repository around this layer (RTPMGR_TOPDIR), found at parse time.

RTPMGR_VERSION ??= "0.1.0"
RTPMGR_SRCREV ??= ""

# nooelint: oelint.task.noanonpython - the default commit is a property of the checkout, read at parse time
python () {
    if d.getVar('RTPMGR_SRCREV'):
        return
    import rtpmgr.source
    topdir = d.getVar('RTPMGR_TOPDIR')
    try:
        commit = rtpmgr.source.checked_out_commit(topdir)
        # Re-parse when HEAD moves (checkout, commit): the parse cache must not keep an old commit.
        for path in rtpmgr.source.head_files(topdir):
            bb.parse.mark_dependency(d, path)
        # ... and when the code that reads it changes.
        bb.parse.mark_dependency(d, rtpmgr.source.__file__)
        if not rtpmgr.source.reachable_from_a_ref(topdir, commit):
            bb.warn("%s: the checked-out commit %s of %s is on no branch or tag, so do_fetch cannot "
                    "find it: commit to a branch or tag, or use kas/local-src.yml" % (d.getVar('PN'), commit, topdir))
    except rtpmgr.source.SourceError as e:
        raise bb.parse.SkipRecipe(str(e))
    d.setVar('RTPMGR_SRCREV', commit)
}
