#!/usr/bin/env bash
# trim-rootfs.sh ROOT - shrink an extracted Debian arm64 rootfs to what the test image runs.
#
# Why: the initramfs is decompressed by an emulated CPU at every boot; 300 MB of docs, locales and
# unused GStreamer plugins (and the libraries only they need) cost seconds per boot. What stays:
# every executable, the GStreamer plugins listed below, and the shared libraries those need
# (the NEEDED closure, resolved with the cross readelf).
set -euo pipefail
root=$1

# GStreamer plugins the product's default pipelines and tests use.
keep_plugins="coreelements app rtpmanager rtp opus audiotestsrc audioconvert audioresample udp
	typefindfunctions"

rm -rf "$root"/usr/share/{doc,man,info,locale,i18n,perl,fonts,bug,lintian,gtk-doc,X11} \
	"$root"/usr/lib/aarch64-linux-gnu/gconv "$root"/usr/lib/aarch64-linux-gnu/perl* \
	"$root"/var/cache/apt "$root"/var/lib/apt/lists

# Executables the image never runs but whose libraries are large (perl, ICU via libxml2, crypto):
# systemd arrives as a dependency of udev; the image keeps only udevd and udevadm of it.
rm -f "$root"/usr/bin/perl* "$root"/usr/bin/update-mime-database "$root"/usr/bin/systemd-* \
	"$root"/usr/bin/{busctl,timedatectl,localectl,hostnamectl} "$root"/bin/systemd-* \
	"$root"/bin/{systemctl,journalctl,loginctl,networkctl}
find "$root"/lib/systemd "$root"/usr/lib/systemd -type f -name 'systemd*' ! -name 'systemd-udevd' \
	! -name 'libsystemd-*.so' -delete 2>/dev/null || true
rm -rf "$root"/lib/systemd/system-generators "$root"/usr/lib/systemd/*-generators

plugdir=$root/usr/lib/aarch64-linux-gnu/gstreamer-1.0
for so in "$plugdir"/libgst*.so; do
	name=$(basename "$so" .so)
	name=${name#libgst}
	case " $(echo $keep_plugins) " in
	*" $name "*) ;;
	*) rm -f "$so" ;;
	esac
done

python3 - "$root" <<'EOF'
import os, subprocess, sys

root = sys.argv[1]
libdirs = ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib", "lib/systemd", "usr/lib/systemd"]

def is_elf(path):
    # Regular files only: opening a device node or FIFO (the rootfs has /dev) could block.
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False

def needed(path):
    out = subprocess.run(["aarch64-linux-gnu-readelf", "-d", path], capture_output=True, text=True).stdout
    return [l.split("[", 1)[1].split("]", 1)[0] for l in out.splitlines() if "(NEEDED)" in l]

def resolve(name):
    for d in libdirs:
        p = os.path.join(root, d, name)
        if os.path.exists(p):
            return p
    return None

# Roots: every ELF that is not a shared library (executables), plus the kept plugins, plus the
# GStreamer libraries our own binaries link (added after this trim, so name them here).
roots, libs = [], set()
for dirpath, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if os.path.join(dirpath, d) != os.path.join(root, "dev")]
    for fn in files:
        p = os.path.join(dirpath, fn)
        if not is_elf(p):
            continue
        if ".so" in fn:
            libs.add(os.path.realpath(p))
            if "/gstreamer-1.0/" in p:
                roots.append(p)
        else:
            roots.append(p)
for extra in ["libgstreamer-1.0.so.0", "libgstapp-1.0.so.0", "libgstbase-1.0.so.0", "libgcc_s.so.1",
              "libglib-2.0.so.0", "libgobject-2.0.so.0", "libgstrtp-1.0.so.0", "libgstaudio-1.0.so.0",
              "ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libnss_files.so.2"]:
    p = resolve(extra)
    if p:
        roots.append(p)

keep, todo = set(), list(roots)
while todo:
    p = os.path.realpath(todo.pop())
    if p in keep:
        continue
    keep.add(p)
    for n in needed(p):
        r = resolve(n)
        if r:
            todo.append(r)
        elif not n.startswith("ld-linux"):
            print(f"trim-rootfs: warning: {os.path.relpath(p, root)} needs {n}, not found", file=sys.stderr)

removed = 0
for lib in sorted(libs - keep):
    if "/gstreamer-1.0/" in lib:
        continue
    os.remove(lib)
    removed += 1
# Drop symlinks left dangling by the removal.
for dirpath, _, files in os.walk(root):
    for fn in files:
        p = os.path.join(dirpath, fn)
        if os.path.islink(p) and not os.path.exists(p) and ".so" in fn:
            os.remove(p)
print(f"trim-rootfs: kept {len(keep)} ELF files, removed {removed} unused shared libraries")
EOF
