/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rtp_mgr_compat.h - the one place for differences between kernel versions.
 *
 * Tested against what `make test` builds (steps module-arm64, module-amd64,
 * module-range: Debian's 5.10, 6.1 and 6.12, and a prepared 6.6 tree, the
 * series of Yocto scarthgap's linux-yocto; arm64 and amd64); each shim
 * says which change it covers. Stable kernels backport some of
 * these changes, so a shim tests for the feature (a macro the change added)
 * rather than for LINUX_VERSION_CODE where it can.
 */
#ifndef _RTP_MGR_COMPAT_H
#define _RTP_MGR_COMPAT_H

#include <linux/mm.h>
#include <linux/udp.h>
#include <linux/version.h>
#include <net/ipv6_stubs.h>
#include <net/udp.h>

/*
 * Turn on the encapsulation branch of the UDP receive path for @sk, once
 * per socket, so that udp_destroy_sock() turns it off again. This is the
 * inline udp_tunnel_encap_enable() of include/net/udp_tunnel.h, whose
 * argument changed from struct socket to struct sock when the UDP flags
 * became atomic bits (udp_test_and_set_bit(), mainline 6.7, backported to
 * 6.1 and 6.6 stable): the flag is tested the same way here.
 */
static inline void rtpm_udp_encap_enable(struct sock *sk)
{
#ifdef udp_test_and_set_bit
	if (udp_test_and_set_bit(ENCAP_ENABLED, sk))
		return;
#else
	if (udp_sk(sk)->encap_enabled)
		return;
	udp_sk(sk)->encap_enabled = 1;
#endif
#if IS_ENABLED(CONFIG_IPV6)
	if (READ_ONCE(sk->sk_family) == PF_INET6)
		ipv6_stub->udpv6_encap_enable();
#endif
	udp_encap_enable();
}

/*
 * vm_flags_set() and vm_flags_clear() appeared in 6.3, when vma->vm_flags
 * became const for everybody but them (per-VMA locking). Neither is a macro,
 * so the version is the test; 6.1 stable did not take them.
 */
static inline void rtpm_vm_flags_clear(struct vm_area_struct *vma,
				       unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

#endif /* _RTP_MGR_COMPAT_H */
