# rtpmgr - top-level entry points. Each target sets up the host itself (scripts/setup-host.sh).
#
#   make demo    build the module, the tools and the aarch64 appliance image, boot it in QEMU and run a
#                live RTP stream through ring -> rtp-feeder -> GStreamer, with stats and a summary
#   make test    every test: host (cargo), module W=1 builds, Yocto layer checks, on-device suite in QEMU
#   make bench   rtpmgr-bench in the QEMU guest (kpti=0): ring vs per-slot ioctls, UDP, pipe, GStreamer, and
#                end to end with RTP sent from the host through the guest's NIC (kernel-attached path,
#                recvmmsg, udpsrc, XDP/socket floors); results in build/logs/console-bench.log, plots with
#                docs/perf/plot.py (docs/performance.md)
#   make diagrams  re-render the drawings in docs/ (docs/NAME.dot -> docs/NAME.svg, Graphviz); make test
#                fails while a committed SVG is older than its source (scripts/render-diagrams.sh)
#   make clean   remove build outputs (keeps downloaded packages: make distclean removes those too)
#
# Variables: BUILD (output dir, default ./build), RTPMGR_QEMU_TIMEOUT (seconds per guest boot),
# DEMO_SECONDS, DEMO_RATE, QEMU_APPEND (extra guest kernel args, e.g. rtp_mgr.ring_order=99).

SHELL := /bin/bash
DEMO_SECONDS ?= 10
DEMO_RATE ?= 200
QEMU_APPEND ?=

.PHONY: all demo test bench bench-peer setup image diagrams clean distclean

all: test

setup:
	scripts/setup-host.sh

image: setup
	test/qemu/build-image.sh

# The host end of the guest's NIC (bench and demo send RTP from the host into the guest).
bench-peer: setup
	scripts/heavy-lock nice -n 10 cargo build --manifest-path crates/Cargo.toml --release --locked -p rtpmgr-bench

demo: image bench-peer
	test/qemu/boot.sh demo rtpmgr.seconds=$(DEMO_SECONDS) rtpmgr.rate=$(DEMO_RATE) $(QEMU_APPEND)

# 12 channels: the scaling comparison uses channels 4..11 (one per stream). The full run takes ~25 min.
bench: image bench-peer
	RTPMGR_QEMU_TIMEOUT=$${RTPMGR_QEMU_TIMEOUT:-3600} test/qemu/boot.sh bench rtp_mgr.channels=12 $(QEMU_APPEND)

test: setup
	QEMU_APPEND="$(QEMU_APPEND)" test/run-tests.sh

diagrams: setup
	scripts/render-diagrams.sh

clean:
	rm -rf build/image build/rootfs build/logs build/device-tests build/stamps/rootfs-base
	-$(MAKE) -C kernel clean KDIR=$$(cat build/kdir-arm64 2>/dev/null || echo /nonexistent) >/dev/null 2>&1
	cargo clean --manifest-path crates/Cargo.toml

distclean:
	rm -rf build crates/target
