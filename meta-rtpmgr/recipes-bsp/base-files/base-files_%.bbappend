# The A/B layout's fixed mounts, in the root filesystem itself: wic adds fstab lines only to the
# copy of the rootfs inside the .wic image, and a RAUC bundle carries the plain image, so without
# this an update would come up without /data. Only with DISTRO_FEATURES "rauc".
require ${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'base-files_rtpmgr-ab.inc', '', d)}
