# SPDX-License-Identifier: MIT
#
# Python helpers of meta-rtpmgr, importable from recipes and classes as `rtpmgr`
# (conf/layer.conf: addpylib). Plain Python without BitBake imports, so that
# scripts/check-layer.sh can test them on a host without any layer clones.
