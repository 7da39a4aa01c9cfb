# rtpmgr-image plus what testing and development need and a product must not carry. Built from the
# same recipe (licence, packages, A/B settings), so it tests the product's packages and configuration.
require rtpmgr-image.bb

# nooelint: oelint.var.override - this image's own words replace those of the required rtpmgr-image.bb
SUMMARY = "rtpmgr development and test image"
# nooelint: oelint.var.override - as SUMMARY
DESCRIPTION = "rtpmgr-image with the on-device test suite (rtpmgr-tests, run by testimage and the QEMU \
               harness) and an SSH server (dropbear) for testimage and development."

# dropbear: small, and what testimage's ssh tests log in with (root, empty password only with
# allow-empty-password, which kas/testimage.yml adds for test builds).
IMAGE_FEATURES += "ssh-server-dropbear"

IMAGE_INSTALL += "rtpmgr-tests"
