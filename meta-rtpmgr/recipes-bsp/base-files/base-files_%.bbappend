# The A/B layout's fixed mounts, in the root filesystem itself: wic adds fstab lines only to the
# copy of the rootfs inside the .wic image, and a RAUC bundle carries the plain image, so without
# this an update would come up without /data. Only with this layer's DISTRO_FEATURES "rtpmgr-ab"
# (conf/include/rtpmgr-ab.inc): a product that merely uses RAUC keeps its own fstab.
require ${@bb.utils.contains('DISTRO_FEATURES', 'rtpmgr-ab', 'base-files_rtpmgr-ab.inc', '', d)}
