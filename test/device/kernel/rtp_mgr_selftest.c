// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_selftest - on-device test of the rtp_mgr module ABI.
 *
 * Plays hostile and friendly user space against /dev/rtp_mgrN: every ioctl,
 * every error path with its exact errno, the mmap policy, poll wakeups,
 * ownership across files and processes, reclaim after kill -9, both drop
 * policies, RTP sequence tracking and a concurrent producer/consumer
 * stress; and the ABI 2.0 rules of issue 15, one test per numbered item
 * (test_itemN_*): memory ceilings and memcg charging, the privilege split
 * and roles, CANCEL, RECLAIM, restartable waits, no executable mappings,
 * poll after STOP, reserved fields, and the 1.x ioctl numbers. Output is
 * TAP; the last line is "N passed, N failed, N skipped". A test that
 * cannot run here says why ("# skip: ...") and is counted as skipped.
 *
 * It must run as root (CAP_NET_ADMIN, writable module parameters); the
 * unprivileged cases drop CAP_NET_ADMIN in a child with capset().
 *
 * Usage: rtp_mgr_selftest [-d /dev/rtp_mgrN] [-n stress_packets] [-t name]
 * Default device: /dev/rtp_mgr$RTPMGR_CHANNEL if that is set, else the last
 * channel, which services are least likely to use.
 * The channel's configuration and run state are restored at the end.
 *
 * Each test runs in a forked child (as kselftest_harness does) so that a
 * crash or a hang fails one test, and the child's exit closes its files,
 * which the module must clean up after.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>

#include <linux/capability.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "rtp_mgr_ioctl.h"

/* ---------------------------------------------------------------- harness */

static const char *dev_path;
static unsigned long stress_packets = 200000;

static void fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

static void fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "# %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	_exit(1);
}

#define FAIL(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)

/* Exit status of a test child that could not run here; it said why. */
#define SKIP_STATUS	4

static void skip_test(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void skip_test(const char *fmt, ...)
{
	va_list ap;

	fputs("# skip: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	_exit(SKIP_STATUS);
}

#define ASSERT_TRUE(c) do {						\
	if (!(c))							\
		FAIL("expected %s (errno %d %s)", #c, errno,		\
		     strerror(errno));					\
} while (0)

#define ASSERT_EQ(a, b) do {						\
	long long _a = (long long)(a), _b = (long long)(b);		\
	if (_a != _b)							\
		FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b);		\
} while (0)

/* expr must fail with -1 and exactly errno e. */
#define ASSERT_ERRNO(expr, e) do {					\
	errno = 0;							\
	long long _r = (long long)(expr);				\
	if (_r != -1 || errno != (e))					\
		FAIL("%s: want -1/%s, got %lld/%s", #expr, strerror(e),	\
		     _r, strerror(errno));				\
} while (0)

#define ASSERT_OK(expr) do {						\
	errno = 0;							\
	long long _r = (long long)(expr);				\
	if (_r != 0)							\
		FAIL("%s: want 0, got %lld (%s)", #expr, _r,		\
		     strerror(errno));					\
} while (0)

struct test {
	const char *name;
	void (*fn)(void);
	unsigned int timeout;	/* seconds */
};

/* ---------------------------------------------------------------- helpers */

#define SMALL_ORDER	4	/* 16 slots: fill-the-ring tests stay short */
#define SMALL_PAYLOAD	256

struct chan {
	int fd;
	struct rtpm_info info;
	const struct rtpm_ring_header *hdr;
	const struct rtpm_slot_desc *desc;
	uint8_t *pay;
};

static int open_dev(int flags)
{
	int fd = open(dev_path, O_RDWR | flags);

	if (fd < 0)
		FAIL("open %s: %s", dev_path, strerror(errno));
	return fd;
}

static void configure(int fd, unsigned int order, unsigned int payload,
		      unsigned int drop)
{
	struct rtpm_config cfg = {
		.ring_order = order,
		.slot_payload = payload,
		.drop_policy = drop,
	};

	ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
}

static void get_info(int fd, struct rtpm_info *info)
{
	ASSERT_OK(ioctl(fd, RTPM_IOC_GET_INFO, info));
}

static void get_stats(int fd, struct rtpm_stats *st)
{
	ASSERT_OK(ioctl(fd, RTPM_IOC_GET_STATS, st));
}

static void get_status(int fd, struct rtpm_status *st)
{
	ASSERT_OK(ioctl(fd, RTPM_IOC_GET_STATUS, st));
}

/* Map both regions of an open channel. */
static void chan_map(struct chan *c)
{
	void *meta, *pay;

	get_info(c->fd, &c->info);
	meta = mmap(NULL, c->info.meta_size, PROT_READ, MAP_SHARED, c->fd, 0);
	ASSERT_TRUE(meta != MAP_FAILED);
	pay = mmap(NULL, c->info.payload_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, c->fd, c->info.payload_offset);
	ASSERT_TRUE(pay != MAP_FAILED);
	c->hdr = meta;
	c->desc = (const void *)((const uint8_t *)meta +
				 c->hdr->desc_offset);
	c->pay = pay;
}

static void chan_unmap(struct chan *c)
{
	ASSERT_OK(munmap((void *)c->hdr, c->info.meta_size));
	ASSERT_OK(munmap(c->pay, c->info.payload_size));
}

/* A fresh, configured, running, mapped channel. */
static void chan_setup(struct chan *c, unsigned int order,
		       unsigned int payload, unsigned int drop, int flags)
{
	c->fd = open_dev(flags);
	configure(c->fd, order, payload, drop);
	ASSERT_OK(ioctl(c->fd, RTPM_IOC_START));
	chan_map(c);
}

static uint8_t *slot_pay(struct chan *c, uint32_t index)
{
	return c->pay + (size_t)index * c->info.slot_stride;
}

static int reserve1(int fd, uint32_t *index)
{
	struct rtpm_slot_ref r = { 0 };
	int ret = ioctl(fd, RTPM_IOC_RESERVE_SLOT, &r);

	if (!ret)
		*index = r.index;
	return ret;
}

static int push1(int fd, uint32_t index, uint32_t len)
{
	struct rtpm_slot_ref r = { .index = index, .len = len };

	return ioctl(fd, RTPM_IOC_PUSH_SLOT, &r);
}

static int pop1(int fd, struct rtpm_slot_ref *r)
{
	memset(r, 0, sizeof(*r));
	return ioctl(fd, RTPM_IOC_POP_SLOT, r);
}

static int release1(int fd, uint32_t index)
{
	struct rtpm_slot_ref r = { .index = index };

	return ioctl(fd, RTPM_IOC_RELEASE_SLOT, &r);
}

static int batch(int fd, unsigned long req, struct rtpm_slot_ref *refs,
		 uint32_t *count)
{
	struct rtpm_batch b = {
		.slots = (uintptr_t)refs,
		.count = *count,
	};
	int ret = ioctl(fd, req, &b);

	*count = b.count;
	return ret;
}

/* Write an RTP v2 header (PT 96) to p. */
static void put_rtp(uint8_t *p, uint16_t seq, uint32_t ts, uint32_t ssrc,
		    bool marker)
{
	p[0] = 0x80;
	p[1] = (marker ? 0x80 : 0) | 96;
	p[2] = seq >> 8;
	p[3] = seq;
	p[4] = ts >> 24;
	p[5] = ts >> 16;
	p[6] = ts >> 8;
	p[7] = ts;
	p[8] = ssrc >> 24;
	p[9] = ssrc >> 16;
	p[10] = ssrc >> 8;
	p[11] = ssrc;
}

/* Reserve, write an RTP packet with seq and push; returns the slot. */
static uint32_t push_rtp(struct chan *c, uint16_t seq, uint32_t ssrc,
			 uint32_t len)
{
	uint32_t index;

	ASSERT_OK(reserve1(c->fd, &index));
	put_rtp(slot_pay(c, index), seq, seq * 160u, ssrc, false);
	ASSERT_OK(push1(c->fd, index, len));
	return index;
}

static void pop_release_all(struct chan *c)
{
	struct rtpm_slot_ref r;

	while (!pop1(c->fd, &r))
		ASSERT_OK(release1(c->fd, r.index));
	ASSERT_TRUE(errno == EAGAIN);
}

static uint32_t load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void conservation(int fd)
{
	struct rtpm_stats st;
	struct rtpm_status s;

	get_stats(fd, &st);
	get_status(fd, &s);
	ASSERT_EQ(st.pushed_packets, st.popped_packets + st.drops + s.ready);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void wait_child_ok(pid_t pid)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("child %d failed (status 0x%x)", (int)pid, status);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Hang like a stuck process until killed, and die with the test: a failed
 * test must not leave a holder of slots or roles behind for the next one.
 */
static void hang(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;)
		pause();
}

static int open_ro(int flags)
{
	int fd = open(dev_path, O_RDONLY | flags);

	if (fd < 0)
		FAIL("open %s read-only: %s", dev_path, strerror(errno));
	return fd;
}

static int claim(int fd, uint32_t roles)
{
	struct rtpm_claim c = { .roles = roles };

	return ioctl(fd, RTPM_IOC_CLAIM, &c);
}

static int cancel1(int fd, uint32_t index)
{
	struct rtpm_slot_ref r = { .index = index };

	return ioctl(fd, RTPM_IOC_CANCEL_SLOT, &r);
}

/* RECLAIM; returns the ioctl result and the slots taken back in *n. */
static int reclaim(int fd, uint64_t min_held_ns, uint32_t *n)
{
	struct rtpm_reclaim rc = { .min_held_ns = min_held_ns };
	int ret = ioctl(fd, RTPM_IOC_RECLAIM, &rc);

	if (n)
		*n = rc.reclaimed;
	return ret;
}

/* The index the next RESERVE (or one-call PUSH) takes. */
static uint32_t next_slot(struct chan *c)
{
	return load_acquire(&c->hdr->reserve) & (c->info.slot_count - 1);
}

/*
 * Give up CAP_NET_ADMIN (effective, permitted, inheritable) while staying
 * uid 0: the device node stays accessible, only the capability is gone.
 */
static void drop_net_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const uint32_t bit = 1u << (CAP_NET_ADMIN % 32);
	const int word = CAP_NET_ADMIN / 32;

	ASSERT_OK(syscall(SYS_capget, &h, d));
	d[word].effective &= ~bit;
	d[word].permitted &= ~bit;
	d[word].inheritable &= ~bit;
	ASSERT_OK(syscall(SYS_capset, &h, d));
	ASSERT_OK(syscall(SYS_capget, &h, d));
	ASSERT_EQ(d[word].effective & bit, 0);
}

/* A child that sends sig to the caller after ms; reap it with wait_child_ok. */
static pid_t signal_me_after(int sig, unsigned int ms)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		sleep_ms(ms);
		_exit(kill(parent, sig) ? 1 : 0);
	}
	return pid;
}

/* ------------------------------------------- module parameters and memory */

#define PARAM_DIR	"/sys/module/rtp_mgr/parameters/"

/* A module parameter's value, or -1 if it cannot be read. */
static long long read_param(const char *name)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtoll(buf, NULL, 10);
}

static int write_text(const char *path, const char *text)
{
	ssize_t len = strlen(text), n;
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return -1;
	n = write(fd, text, len);
	close(fd);
	return n == len ? 0 : -1;
}

static void write_param(const char *name, unsigned long long val)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	snprintf(buf, sizeof(buf), "%llu", val);
	if (write_text(path, buf))
		FAIL("write %s to %s: %s", buf, path, strerror(errno));
}

/* Bytes of every channel's ring: what max_total_kib is checked against. */
static uint64_t all_rings_bytes(void)
{
	struct rtpm_info info;
	uint64_t total = 0;
	unsigned int i, channels;
	char path[64];
	int fd = open_ro(0);

	get_info(fd, &info);
	close(fd);
	channels = info.channels;
	for (i = 0; i < channels; i++) {
		snprintf(path, sizeof(path), "/dev/%s%u", RTPM_DEVICE_PREFIX,
			 i);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			FAIL("open %s: %s", path, strerror(errno));
		get_info(fd, &info);
		close(fd);
		total += info.meta_size + info.payload_size;
	}
	return total;
}

/* A "name value" line of a text file such as /proc/meminfo or memory.events. */
static long long text_value(const char *path, const char *name)
{
	char line[256];
	size_t len = strlen(name);
	long long val = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		FAIL("open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) &&
		    (line[len] == ' ' || line[len] == ':')) {
			val = strtoll(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	if (val < 0)
		FAIL("%s has no %s", path, name);
	return val;
}

static long long mem_available_kib(void)
{
	return text_value("/proc/meminfo", "MemAvailable");
}

/* ------------------------------------------------------------------ tests */

static void test_info_and_header(void)
{
	struct chan c = { 0 };

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_EQ(c.info.abi_major, RTPM_ABI_MAJOR);
	ASSERT_EQ(c.info.abi_minor, RTPM_ABI_MINOR);
	ASSERT_TRUE(c.info.channel < c.info.channels);
	ASSERT_EQ(c.info.config.ring_order, SMALL_ORDER);
	ASSERT_EQ(c.info.config.slot_payload, SMALL_PAYLOAD);
	ASSERT_EQ(c.info.slot_count, 1u << SMALL_ORDER);
	ASSERT_EQ(c.info.slot_stride % RTPM_SLOT_ALIGN, 0);
	ASSERT_EQ(c.info.desc_size, sizeof(struct rtpm_slot_desc));
	ASSERT_EQ(c.info.header_size, sizeof(struct rtpm_ring_header));
	ASSERT_EQ(c.info.payload_offset, c.info.meta_size);
	ASSERT_EQ(c.info.state, RTPM_STATE_RUNNING);
	/* ABI 2.0: the ceiling and what this (root, O_RDWR) file may do. */
	if (read_param("max_ring_kib") >= 0)
		ASSERT_EQ(c.info.max_ring_bytes,
			  read_param("max_ring_kib") * 1024);
	ASSERT_EQ(c.info.file_caps, RTPM_FILE_WRITE | RTPM_FILE_ADMIN);
	ASSERT_EQ(c.info.file_roles, 0);
	{
		static const uint8_t zero[40];

		ASSERT_TRUE(!memcmp(c.info.config.reserved, zero,
				    sizeof(c.info.config.reserved)));
		ASSERT_TRUE(!memcmp(c.hdr->reserved0, zero,
				    sizeof(c.hdr->reserved0)));
		ASSERT_TRUE(!memcmp(c.info.reserved, zero,
				    sizeof(c.info.reserved)));
	}

	/* The header page repeats the layout, so no offset is hard-coded. */
	ASSERT_EQ(c.hdr->magic, RTPM_MAGIC);
	ASSERT_EQ(c.hdr->abi_major, RTPM_ABI_MAJOR);
	ASSERT_EQ(c.hdr->header_size, 256);
	ASSERT_EQ(c.hdr->channel, c.info.channel);
	ASSERT_EQ(c.hdr->slot_count, c.info.slot_count);
	ASSERT_EQ(c.hdr->ring_order, SMALL_ORDER);
	ASSERT_EQ(c.hdr->slot_payload, SMALL_PAYLOAD);
	ASSERT_EQ(c.hdr->slot_stride, c.info.slot_stride);
	ASSERT_EQ(c.hdr->desc_size, 32);
	ASSERT_EQ(c.hdr->drop_policy, RTPM_DROP_REJECT_NEWEST);
	ASSERT_TRUE(c.hdr->desc_offset >= 256);
	ASSERT_TRUE(c.hdr->desc_offset + 32ull * c.hdr->slot_count <=
		    c.hdr->meta_size);
	ASSERT_EQ(c.hdr->meta_size, c.info.meta_size);
	ASSERT_EQ(c.hdr->payload_offset, c.info.payload_offset);
	ASSERT_EQ(c.hdr->payload_size, c.info.payload_size);
	ASSERT_TRUE(c.hdr->payload_size >=
		    (uint64_t)c.hdr->slot_count * c.hdr->slot_stride);
	ASSERT_EQ(c.hdr->reserve_off, 128);
	ASSERT_EQ(c.hdr->prod_off, 132);
	ASSERT_EQ(c.hdr->cons_off, 192);
	ASSERT_EQ(c.hdr->release_off, 196);
	ASSERT_EQ(c.hdr->reserve, 0);
	ASSERT_EQ(c.hdr->producer, 0);
}

static void test_unknown_ioctl_and_efault(void)
{
	int fd = open_dev(0);

	ASSERT_ERRNO(ioctl(fd, _IO(RTPM_IOC_MAGIC, 0x7f)), ENOTTY);
	ASSERT_ERRNO(ioctl(fd, _IO('T', 0x01)), ENOTTY);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_GET_INFO, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_GET_STATS, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_GET_STATUS, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_PUSH_SLOT, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_PUSH_BATCH, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CLAIM, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RECLAIM, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CANCEL_SLOT, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CANCEL_BATCH, (void *)8), EFAULT);
}

static void test_configure_errors(void)
{
	struct rtpm_config cfg = { .ring_order = 10, .slot_payload = 2048 };
	struct rtpm_info info;
	void *m;
	int fd = open_dev(0);

	/* Start from a known, empty ring. */
	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	cfg.flags = 1;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.flags = 0;
	cfg.ring_order = RTPM_RING_ORDER_MIN - 1;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.ring_order = RTPM_RING_ORDER_MAX + 1;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.ring_order = 5;
	cfg.slot_payload = RTPM_SLOT_PAYLOAD_MIN - 1;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.slot_payload = RTPM_SLOT_PAYLOAD_MAX + 1;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.slot_payload = 512;
	cfg.drop_policy = 2;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	cfg.drop_policy = RTPM_DROP_OLDEST;

	/* Running: -EBUSY. */
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
	ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));

	/* Mapped (either region, even from another file): -EBUSY. */
	get_info(fd, &info);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
	ASSERT_OK(munmap(m, 4096));
	{
		int fd2 = open_dev(0);

		m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd2,
			 info.payload_offset);
		ASSERT_TRUE(m != MAP_FAILED);
		ASSERT_OK(close(fd2));
		/* The mapping outlives the file. */
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
		ASSERT_OK(munmap(m, 4096));
	}

	/* Slots owned (popped on a stopped channel): -EBUSY. */
	{
		struct rtpm_slot_ref r;
		uint32_t idx;

		ASSERT_OK(ioctl(fd, RTPM_IOC_START));
		ASSERT_OK(reserve1(fd, &idx));
		ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RESET), EBUSY);
		ASSERT_OK(ioctl(fd, RTPM_IOC_START));
		ASSERT_OK(push1(fd, idx, 100));
		ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
		ASSERT_OK(pop1(fd, &r));
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
		ASSERT_OK(release1(fd, r.index));
	}

	/* Stopped and unmapped: applied, and visible everywhere. */
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	get_info(fd, &info);
	ASSERT_EQ(info.config.ring_order, 5);
	ASSERT_EQ(info.config.slot_payload, 512);
	ASSERT_EQ(info.config.drop_policy, RTPM_DROP_OLDEST);
	ASSERT_EQ(info.slot_count, 32);
	ASSERT_EQ(info.slot_stride, 512);
	{
		struct chan c = { .fd = fd };

		chan_map(&c);
		ASSERT_EQ(c.hdr->slot_count, 32);
		ASSERT_EQ(c.hdr->drop_policy, RTPM_DROP_OLDEST);
	}
}

static void test_jumbo_payload(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	uint32_t idx, i;
	uint8_t *p;

	chan_setup(&c, 6, 9000, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_EQ(c.info.config.slot_payload, 9000);
	ASSERT_EQ(c.info.slot_stride, 9024);
	ASSERT_TRUE(c.info.payload_size >= 64ull * 9024);

	ASSERT_OK(reserve1(c.fd, &idx));
	p = slot_pay(&c, idx);
	put_rtp(p, 7, 1, 0x1234, true);
	for (i = 12; i < 9000; i++)
		p[i] = (uint8_t)(i * 7);
	ASSERT_ERRNO(push1(c.fd, idx, 9001), EINVAL);
	ASSERT_OK(push1(c.fd, idx, 9000));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, idx);
	ASSERT_EQ(r.len, 9000);
	ASSERT_EQ(c.desc[idx].len, 9000);
	ASSERT_EQ(c.desc[idx].flags, RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
	for (i = 12; i < 9000; i++)
		if (p[i] != (uint8_t)(i * 7))
			FAIL("payload byte %u corrupted", i);
	ASSERT_OK(release1(c.fd, idx));
	/* The last slot's payload ends inside the mapping. */
	p = slot_pay(&c, c.info.slot_count - 1);
	p[8999] = 0x5a;
	ASSERT_EQ(p[8999], 0x5a);
}

static void test_stopped_channel(void)
{
	struct rtpm_slot_ref refs[4] = { 0 };
	struct rtpm_status s;
	struct rtpm_info info;
	uint32_t idx, n;
	int fd = open_dev(O_NONBLOCK);

	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	/* The one-call PUSH (implicit reserve) is the producer's alone. */
	ASSERT_OK(claim(fd, RTPM_ROLE_PRODUCER));
	get_info(fd, &info);
	ASSERT_EQ(info.state, RTPM_STATE_STOPPED);
	get_status(fd, &s);
	ASSERT_EQ(s.state, RTPM_STATE_STOPPED);
	ASSERT_ERRNO(reserve1(fd, &idx), EPIPE);
	ASSERT_ERRNO(push1(fd, 0, 10), EPIPE);
	n = 4;
	ASSERT_ERRNO(batch(fd, RTPM_IOC_RESERVE_BATCH, refs, &n), EPIPE);
	ASSERT_EQ(n, 0);	/* entries done: none */
	n = 1;
	refs[0].len = 10;	/* a valid entry: only the state refuses it */
	ASSERT_ERRNO(batch(fd, RTPM_IOC_PUSH_BATCH, refs, &n), EPIPE);

	/* START and STOP are idempotent; a stopped channel still drains. */
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));
	get_status(fd, &s);
	ASSERT_EQ(s.state, RTPM_STATE_RUNNING);
	ASSERT_OK(reserve1(fd, &idx));
	ASSERT_OK(push1(fd, idx, 10));
	ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
	ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
	ASSERT_OK(pop1(fd, &refs[0]));
	ASSERT_EQ(refs[0].index, idx);
	ASSERT_OK(release1(fd, idx));
	/* Drained after a STOP this file saw: end of stream, like a pipe. */
	ASSERT_ERRNO(pop1(fd, &refs[0]), EPIPE);

	/* None of this is misuse. */
	{
		struct rtpm_stats st;

		get_stats(fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
		ASSERT_EQ(st.denied, 0);
	}
}

static void test_single_slot_cycle(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_status s;
	struct rtpm_stats st;
	uint32_t idx;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_EQ(idx, 0);
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 1);
	ASSERT_EQ(s.free, 15);
	ASSERT_EQ(load_acquire(&c.hdr->reserve), 1);
	ASSERT_EQ(load_acquire(&c.hdr->producer), 0);

	memcpy(slot_pay(&c, idx), "hello, ring", 11);
	ASSERT_OK(push1(c.fd, idx, 11));
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 0);
	ASSERT_EQ(s.ready, 1);
	ASSERT_EQ(load_acquire(&c.hdr->producer), 1);
	ASSERT_EQ(c.desc[idx].len, 11);
	ASSERT_EQ(c.desc[idx].flags, RTPM_SLOT_F_MALFORMED);
	ASSERT_TRUE(c.desc[idx].arrival_ns != 0);

	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, idx);
	ASSERT_EQ(r.len, 11);
	ASSERT_EQ(r.arrival_ns, c.desc[idx].arrival_ns);
	ASSERT_TRUE(!memcmp(slot_pay(&c, r.index), "hello, ring", 11));
	ASSERT_EQ(load_acquire(&c.hdr->consumer), 1);
	get_status(c.fd, &s);
	ASSERT_EQ(s.consuming, 1);
	ASSERT_EQ(s.ready, 0);
	ASSERT_ERRNO(pop1(c.fd, &r), EAGAIN);

	ASSERT_OK(release1(c.fd, idx));
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.release, 1);
	ASSERT_EQ(load_acquire(&c.hdr->release), 1);

	/* An explicit arrival time is kept. */
	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_EQ(idx, 1);
	{
		struct rtpm_slot_ref p = {
			.index = idx, .len = 20, .arrival_ns = 123456789,
		};

		ASSERT_OK(ioctl(c.fd, RTPM_IOC_PUSH_SLOT, &p));
	}
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.arrival_ns, 123456789);
	ASSERT_OK(release1(c.fd, r.index));

	get_stats(c.fd, &st);
	ASSERT_EQ(st.pushed_packets, 2);
	ASSERT_EQ(st.pushed_bytes, 31);
	ASSERT_EQ(st.popped_packets, 2);
	ASSERT_EQ(st.popped_bytes, 31);
	ASSERT_EQ(st.released, 2);
	ASSERT_EQ(st.underruns, 1);
	ASSERT_EQ(st.malformed, 2);
	ASSERT_EQ(st.illegal_ops, 0);
}

/*
 * The seed's one-call producer: PUSH_SLOT on the next free slot. ABI 2.0
 * allows it to the producer-role holder only (test_item3_*).
 */
static void test_implicit_reserve(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	uint32_t next, idx;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ASSERT_OK(claim(c.fd, RTPM_ROLE_PRODUCER));
	next = load_acquire(&c.hdr->reserve) & (c.info.slot_count - 1);
	put_rtp(slot_pay(&c, next), 1, 0, 42, false);
	ASSERT_OK(push1(c.fd, next, 12));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, next);
	ASSERT_OK(release1(c.fd, r.index));

	/* Any other free slot is in the wrong state. */
	next = load_acquire(&c.hdr->reserve) & (c.info.slot_count - 1);
	ASSERT_ERRNO(push1(c.fd, (next + 3) % c.info.slot_count, 12),
		     EBADSLT);

	/* Fill the ring with one-call pushes; the 17th is an overrun. */
	for (idx = 0; idx < c.info.slot_count; idx++) {
		next = load_acquire(&c.hdr->reserve) &
		       (c.info.slot_count - 1);
		ASSERT_OK(push1(c.fd, next, 12));
	}
	next = load_acquire(&c.hdr->reserve) & (c.info.slot_count - 1);
	ASSERT_ERRNO(push1(c.fd, next, 12), EAGAIN);
	{
		struct rtpm_stats st;

		get_stats(c.fd, &st);
		ASSERT_EQ(st.overruns, 1);
		ASSERT_EQ(st.illegal_ops, 1);
		ASSERT_EQ(st.denied, 0);
		ASSERT_EQ(st.pushed_packets, 17);
	}
	conservation(c.fd);
}

static void test_slot_errors(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_stats st;
	uint32_t a, b;
	uint64_t ill = 0;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ASSERT_OK(reserve1(c.fd, &a));
	ASSERT_OK(reserve1(c.fd, &b));

	/* Bad index and bad lengths: -EINVAL. */
	ASSERT_ERRNO(push1(c.fd, 16, 10), EINVAL);
	ill++;
	ASSERT_ERRNO(push1(c.fd, 0xffffffff, 10), EINVAL);
	ill++;
	ASSERT_ERRNO(push1(c.fd, a, 0), EINVAL);
	ill++;
	ASSERT_ERRNO(push1(c.fd, a, SMALL_PAYLOAD + 1), EINVAL);
	ill++;
	ASSERT_ERRNO(release1(c.fd, 16), EINVAL);
	ill++;
	ASSERT_OK(push1(c.fd, a, SMALL_PAYLOAD));

	/* Wrong states: -EBADSLT. */
	ASSERT_ERRNO(push1(c.fd, a, 10), EBADSLT);	/* READY */
	ill++;
	ASSERT_ERRNO(release1(c.fd, a), EBADSLT);	/* READY */
	ill++;
	ASSERT_ERRNO(release1(c.fd, b), EBADSLT);	/* PRODUCING */
	ill++;
	ASSERT_ERRNO(release1(c.fd, 9), EBADSLT);	/* FREE */
	ill++;
	ASSERT_ERRNO(push1(c.fd, 9, 10), EBADSLT);	/* FREE, not next */
	ill++;
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, a);
	ASSERT_ERRNO(push1(c.fd, a, 10), EBADSLT);	/* CONSUMING */
	ill++;
	ASSERT_OK(release1(c.fd, a));
	ASSERT_ERRNO(release1(c.fd, a), EBADSLT);	/* released twice */
	ill++;

	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, ill);
	ASSERT_OK(push1(c.fd, b, 1));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, b);
	ASSERT_EQ(r.len, 1);
	ASSERT_OK(release1(c.fd, b));
	conservation(c.fd);
}

static void test_foreign_slots(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_stats st;
	uint32_t idx, n;
	int fd2;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	fd2 = open_dev(O_NONBLOCK);

	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_ERRNO(push1(fd2, idx, 10), EPERM);
	{
		struct rtpm_slot_ref refs[1] = {
			{ .index = idx, .len = 10 },
		};

		n = 1;
		ASSERT_ERRNO(batch(fd2, RTPM_IOC_PUSH_BATCH, refs, &n), EPERM);
		ASSERT_EQ(n, 0);	/* entries done: none */
	}
	ASSERT_OK(push1(c.fd, idx, 10));

	ASSERT_OK(pop1(fd2, &r));
	ASSERT_EQ(r.index, idx);
	ASSERT_ERRNO(release1(c.fd, idx), EPERM);
	ASSERT_OK(release1(fd2, idx));

	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, 3);

	/* A dup()ed descriptor is the same open file, hence the same owner. */
	{
		int fd3 = dup(c.fd);

		ASSERT_OK(reserve1(c.fd, &idx));
		ASSERT_OK(push1(fd3, idx, 10));
		ASSERT_OK(close(fd3));
	}
	conservation(c.fd);
}

static void test_batch_errors(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[RTPM_BATCH_MAX + 1];
	struct rtpm_batch b = { 0 };
	struct rtpm_stats st;
	uint32_t n;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	memset(refs, 0, sizeof(refs));

	b.slots = (uintptr_t)refs;
	b.count = 1;
	b.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RESERVE_BATCH, &b), EINVAL);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_POP_BATCH, &b), EINVAL);
	b.flags = 0;
	b.count = RTPM_BATCH_MAX + 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RESERVE_BATCH, &b), E2BIG);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RELEASE_BATCH, &b), E2BIG);
	b.count = 4;
	b.slots = 8;	/* unmapped user address */
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_PUSH_BATCH, &b), EFAULT);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RELEASE_BATCH, &b), EFAULT);

	/* count 0 is a no-op. */
	n = 0;
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 0);

	/* Like sendmmsg(): partial success returns 0 and the count done. */
	n = 3;
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 3);
	ASSERT_EQ(refs[0].index, 0);
	ASSERT_EQ(refs[1].index, 1);
	ASSERT_EQ(refs[2].index, 2);
	ASSERT_EQ(refs[0].len, SMALL_PAYLOAD);
	refs[0].len = 10;
	refs[1].len = SMALL_PAYLOAD + 1;	/* bad */
	refs[2].len = 10;
	n = 3;
	ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, refs, &n));
	ASSERT_EQ(n, 1);
	/*
	 * The very first entry failing fails the call with its errno, and
	 * count says none was done (only a call restarted after a signal
	 * keeps its count: it must ask for as much again).
	 */
	n = 2;
	ASSERT_ERRNO(batch(c.fd, RTPM_IOC_PUSH_BATCH, &refs[1], &n), EINVAL);
	ASSERT_EQ(n, 0);
	refs[1].len = 10;
	n = 2;
	ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, &refs[1], &n));
	ASSERT_EQ(n, 2);

	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, 8);
	conservation(c.fd);
}

static void test_batch_cycle(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[RTPM_BATCH_MAX];
	struct rtpm_status s;
	uint32_t n, i;

	chan_setup(&c, 8, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, O_NONBLOCK);
	/* Around the ring several times, with uneven batch sizes. */
	for (i = 0; i < 40; i++) {
		uint32_t want = 1 + (i * 37) % RTPM_BATCH_MAX, got, j;

		n = want;
		ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		ASSERT_EQ(n, want);
		for (j = 0; j < n; j++) {
			put_rtp(slot_pay(&c, refs[j].index), i * 300 + j, 0,
				7, false);
			refs[j].len = 12 + j % 200;
		}
		ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, refs, &n));
		ASSERT_EQ(n, want);
		n = RTPM_BATCH_MAX;
		ASSERT_OK(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n));
		ASSERT_EQ(n, want);
		for (j = 0; j < n; j++)
			ASSERT_EQ(refs[j].len, 12 + j % 200);
		got = n;
		ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, refs, &got));
		ASSERT_EQ(got, want);
	}
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 256);
	ASSERT_EQ(s.reserve, s.release);
	conservation(c.fd);
}

/* Out-of-order PUSH and RELEASE: indices advance only over finished slots. */
static void test_out_of_order(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[4], r;
	struct rtpm_status s;
	uint32_t n = 4;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_OK(push1(c.fd, 2, 10));
	ASSERT_OK(push1(c.fd, 1, 10));
	get_status(c.fd, &s);
	ASSERT_EQ(s.producer, 0);	/* slot 0 still PRODUCING */
	ASSERT_EQ(s.ready, 2);
	ASSERT_ERRNO(pop1(c.fd, &r), EAGAIN);
	ASSERT_OK(push1(c.fd, 0, 10));
	get_status(c.fd, &s);
	ASSERT_EQ(s.producer, 3);
	ASSERT_OK(pop1(c.fd, &refs[0]));
	ASSERT_OK(pop1(c.fd, &refs[1]));
	ASSERT_OK(pop1(c.fd, &refs[2]));
	ASSERT_EQ(refs[2].index, 2);
	ASSERT_OK(release1(c.fd, 2));
	ASSERT_OK(release1(c.fd, 1));
	get_status(c.fd, &s);
	ASSERT_EQ(s.release, 0);
	ASSERT_OK(release1(c.fd, 0));
	get_status(c.fd, &s);
	ASSERT_EQ(s.release, 3);
	ASSERT_OK(push1(c.fd, 3, 10));
	pop_release_all(&c);
	conservation(c.fd);
}

static void test_nonblock_full_and_empty(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[32], r;
	struct rtpm_stats st;
	uint32_t n = 32, idx;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ASSERT_ERRNO(pop1(c.fd, &r), EAGAIN);
	n = 32;
	ASSERT_ERRNO(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n), EAGAIN);
	ASSERT_EQ(n, 0);	/* entries done: none */
	n = 32;
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 16);	/* partial: the ring has 16 slots */
	ASSERT_ERRNO(reserve1(c.fd, &idx), EAGAIN);
	n = 4;
	ASSERT_ERRNO(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs + 16, &n),
		     EAGAIN);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.underruns, 2);
	ASSERT_EQ(st.overruns, 2);
	ASSERT_EQ(st.illegal_ops, 0);
}

/*
 * A handler installed without SA_RESTART sees EINTR. The signal comes from
 * a helper process (SIGUSR1), so that alarm() stays the test's timeout.
 */
static void test_blocking_interrupted(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	uint32_t idx, n = 16;
	struct rtpm_slot_ref refs[16];
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
	pid = signal_me_after(SIGUSR1, 100);
	ASSERT_ERRNO(pop1(c.fd, &r), EINTR);
	wait_child_ok(pid);
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	pid = signal_me_after(SIGUSR1, 100);
	ASSERT_ERRNO(reserve1(c.fd, &idx), EINTR);
	wait_child_ok(pid);
	{
		struct rtpm_stats st;

		get_stats(c.fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
		ASSERT_EQ(st.denied, 0);
	}
}

/* A blocked RESERVE returns -EPIPE when the channel is stopped. */
static void test_blocking_reserve_stop(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[16];
	uint32_t n = 16;
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		int fd = open_dev(0);
		uint32_t idx;

		ASSERT_ERRNO(reserve1(fd, &idx), EPIPE);
		_exit(0);
	}
	sleep_ms(200);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	wait_child_ok(pid);
}

static void test_poll(void)
{
	struct chan c = { 0 };
	struct pollfd p;
	struct rtpm_slot_ref refs[16], r;
	uint32_t n;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	p.fd = c.fd;
	p.events = POLLIN | POLLOUT;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLOUT);

	push_rtp(&c, 1, 1, 12);
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLIN | POLLOUT);

	n = 15;
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 15);
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLIN);		/* full */
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(poll(&p, 1, 0), 0);		/* full and empty */

	/* Wakeups from another process: POLLOUT on release. */
	{
		pid_t pid = fork();

		ASSERT_TRUE(pid >= 0);
		if (!pid) {
			struct pollfd q = { .fd = c.fd, .events = POLLOUT };

			ASSERT_EQ(poll(&q, 1, 10000), 1);
			ASSERT_EQ(q.revents, POLLOUT);
			_exit(0);
		}
		sleep_ms(200);
		ASSERT_OK(release1(c.fd, r.index));
		wait_child_ok(pid);
	}

	/* POLLIN on push, to a poller on another open file. */
	{
		pid_t pid = fork();

		ASSERT_TRUE(pid >= 0);
		if (!pid) {
			int fd = open_dev(O_NONBLOCK);
			struct pollfd q = { .fd = fd, .events = POLLIN };

			ASSERT_EQ(poll(&q, 1, 10000), 1);
			ASSERT_EQ(q.revents, POLLIN);
			ASSERT_OK(pop1(fd, &r));
			ASSERT_OK(release1(fd, r.index));
			_exit(0);
		}
		sleep_ms(200);
		refs[0].len = 12;
		ASSERT_OK(push1(c.fd, refs[0].index, 12));
		wait_child_ok(pid);
	}
}

/* Two processes sharing a channel; blocking POP woken by a PUSH. */
static void test_two_processes(void)
{
	struct chan c = { 0 };
	pid_t pid;
	int i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		/* Consumer with its own open file; inherits the mappings. */
		int fd = open_dev(0);
		struct rtpm_slot_ref r;

		for (i = 0; i < 100; i++) {
			ASSERT_OK(pop1(fd, &r));
			ASSERT_EQ(r.len, 12 + i % 50);
			ASSERT_EQ(c.desc[r.index].rtp_seq, 1000 + i);
			ASSERT_EQ(c.desc[r.index].ssrc, 0xabcdef01u);
			ASSERT_EQ(c.desc[r.index].payload_type, 96);
			ASSERT_EQ(c.desc[r.index].rtp_timestamp,
				  (uint32_t)(1000 + i) * 160u);
			ASSERT_OK(release1(fd, r.index));
		}
		_exit(0);
	}
	for (i = 0; i < 100; i++) {
		if (i % 10 == 0)
			sleep_ms(20);	/* let the consumer block */
		push_rtp(&c, 1000 + i, 0xabcdef01u, 12 + i % 50);
	}
	wait_child_ok(pid);
	{
		struct rtpm_stats st;
		struct rtpm_status s;

		get_stats(c.fd, &st);
		get_status(c.fd, &s);
		ASSERT_EQ(st.pushed_packets, 100);
		ASSERT_EQ(st.popped_packets, 100);
		ASSERT_EQ(st.released, 100);
		ASSERT_EQ(st.rtp_lost, 0);
		ASSERT_EQ(s.free, 16);
		ASSERT_EQ(s.openers, 1);
	}
}

static void test_mmap_policy(void)
{
	struct chan c = { 0 };
	struct rtpm_status s;
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t meta, poff, psz;
	void *m;

	c.fd = open_dev(0);
	configure(c.fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	get_info(c.fd, &c.info);
	meta = c.info.meta_size;
	poff = c.info.payload_offset;
	psz = c.info.payload_size;

	/* Writable meta region: -EPERM, shared or private. */
	ASSERT_TRUE(mmap(NULL, meta, PROT_READ | PROT_WRITE, MAP_SHARED,
			 c.fd, 0) == MAP_FAILED && errno == EPERM);
	ASSERT_TRUE(mmap(NULL, pg, PROT_WRITE, MAP_PRIVATE, c.fd, 0) ==
		    MAP_FAILED && errno == EPERM);
	/* Read-only meta, then an mprotect upgrade: refused. */
	m = mmap(NULL, meta, PROT_READ, MAP_SHARED, c.fd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(mprotect(m, pg, PROT_READ | PROT_WRITE), EACCES);
	ASSERT_OK(munmap(m, meta));
	m = mmap(NULL, meta, PROT_READ, MAP_PRIVATE, c.fd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(mprotect(m, pg, PROT_READ | PROT_WRITE), EACCES);
	ASSERT_OK(munmap(m, meta));

	/* Crossing from meta into payload, or past either: -EINVAL. */
	ASSERT_TRUE(mmap(NULL, meta + pg, PROT_READ, MAP_SHARED, c.fd, 0) ==
		    MAP_FAILED && errno == EINVAL);
	ASSERT_TRUE(mmap(NULL, 2 * pg, PROT_READ, MAP_SHARED, c.fd,
			 meta - pg) == MAP_FAILED && errno == EINVAL);
	ASSERT_TRUE(mmap(NULL, psz + pg, PROT_READ | PROT_WRITE, MAP_SHARED,
			 c.fd, poff) == MAP_FAILED && errno == EINVAL);
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ, MAP_SHARED, c.fd, poff + psz) ==
		    MAP_FAILED && errno == EINVAL);
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ, MAP_SHARED, c.fd,
			 (poff + psz) * 4) == MAP_FAILED && errno == EINVAL);
	/* A private payload mapping would never reach the ring. */
	ASSERT_TRUE(mmap(NULL, psz, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			 c.fd, poff) == MAP_FAILED && errno == EINVAL);

	/* Partial mappings inside one region are fine and share memory. */
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd,
		 poff + psz - pg);
	ASSERT_TRUE(m != MAP_FAILED);
	chan_map(&c);
	((uint8_t *)m)[pg - 1] = 0xa5;
	ASSERT_EQ(c.pay[psz - 1], 0xa5);
	get_status(c.fd, &s);
	ASSERT_EQ(s.mappings, 3);
	ASSERT_OK(munmap(m, pg));
	get_status(c.fd, &s);
	ASSERT_EQ(s.mappings, 2);
	chan_unmap(&c);
	get_status(c.fd, &s);
	ASSERT_EQ(s.mappings, 0);
	/* Page 0 alone (the header) is a valid mapping. */
	m = mmap(NULL, pg, PROT_READ, MAP_SHARED, c.fd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_EQ(*(uint32_t *)m, RTPM_MAGIC);
	ASSERT_OK(munmap(m, pg));
}

static void test_reclaim_on_close(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_status s;
	struct rtpm_stats st;
	uint32_t idx;
	int fd2;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	fd2 = open_dev(O_NONBLOCK);
	push_rtp(&c, 1, 5, 12);
	push_rtp(&c, 2, 5, 12);
	ASSERT_OK(pop1(fd2, &r));		/* fd2 consumes slot 0 */
	ASSERT_OK(reserve1(fd2, &idx));		/* and produces slot 2 */
	get_status(c.fd, &s);
	ASSERT_EQ(s.openers, 2);
	ASSERT_OK(close(fd2));
	get_status(c.fd, &s);
	ASSERT_EQ(s.openers, 1);
	ASSERT_EQ(s.producing, 0);
	ASSERT_EQ(s.consuming, 0);
	ASSERT_EQ(s.ready, 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.reclaimed, 2);
	ASSERT_EQ(st.illegal_ops, 0);
	/* The hole left by the dead producer does not block the ring. */
	push_rtp(&c, 3, 5, 12);
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 2);
	ASSERT_OK(release1(c.fd, r.index));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 3);
	ASSERT_OK(release1(c.fd, r.index));
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, s.release);
	conservation(c.fd);
}

static void test_reclaim_after_kill9(void)
{
	struct chan c = { 0 };
	struct rtpm_status s;
	struct rtpm_stats st;
	int pipefd[2];
	pid_t pid;
	char ch;
	int i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	for (i = 0; i < 4; i++)
		push_rtp(&c, i, 9, 12);
	ASSERT_OK(pipe(pipefd));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		struct rtpm_slot_ref refs[8];
		int fd = open_dev(O_NONBLOCK);
		uint32_t n = 3;

		ASSERT_OK(batch(fd, RTPM_IOC_POP_BATCH, refs, &n));
		ASSERT_EQ(n, 3);
		n = 5;
		ASSERT_OK(batch(fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		ASSERT_EQ(n, 5);
		ASSERT_EQ(write(pipefd[1], "x", 1), 1);
		hang();
	}
	ASSERT_EQ(read(pipefd[0], &ch, 1), 1);
	get_status(c.fd, &s);
	ASSERT_EQ(s.consuming, 3);
	ASSERT_EQ(s.producing, 5);
	ASSERT_OK(kill(pid, SIGKILL));
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);

	get_status(c.fd, &s);
	ASSERT_EQ(s.consuming, 0);
	ASSERT_EQ(s.producing, 0);
	ASSERT_EQ(s.ready, 1);
	ASSERT_EQ(s.openers, 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.reclaimed, 8);
	/* Every slot is usable again: fill the ring completely. */
	pop_release_all(&c);
	for (i = 0; i < 16; i++)
		push_rtp(&c, 100 + i, 9, 12);
	pop_release_all(&c);
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	conservation(c.fd);
}

static void test_drop_reject_newest(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_stats st;
	uint32_t idx;
	int i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	for (i = 0; i < 16; i++)
		push_rtp(&c, i, 3, 12);
	ASSERT_ERRNO(reserve1(c.fd, &idx), EAGAIN);
	ASSERT_ERRNO(reserve1(c.fd, &idx), EAGAIN);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.overruns, 2);
	ASSERT_EQ(st.drops, 0);
	/* The oldest packets survive. */
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 0);
	ASSERT_OK(release1(c.fd, r.index));
	conservation(c.fd);
}

static void test_drop_oldest(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r, held;
	struct rtpm_stats st;
	uint32_t idx;
	int i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_OLDEST,
		   O_NONBLOCK);
	for (i = 0; i < 20; i++)
		push_rtp(&c, i, 3, 12);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.drops, 4);
	ASSERT_EQ(st.overruns, 0);
	ASSERT_EQ(st.pushed_packets, 20);
	conservation(c.fd);
	/* The newest 16 survive, oldest first. */
	for (i = 4; i < 20; i++) {
		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(c.desc[r.index].rtp_seq, i);
		ASSERT_OK(release1(c.fd, r.index));
	}
	ASSERT_ERRNO(pop1(c.fd, &r), EAGAIN);

	/*
	 * A slot held by a consumer at the tail blocks the ring: dropping
	 * READY slots behind it frees nothing, so that is an overrun.
	 */
	push_rtp(&c, 100, 3, 12);
	ASSERT_OK(pop1(c.fd, &held));
	for (i = 0; i < 15; i++)
		push_rtp(&c, 101 + i, 3, 12);
	ASSERT_ERRNO(reserve1(c.fd, &idx), EAGAIN);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.overruns, 1);
	ASSERT_EQ(st.drops, 4);
	/* Releasing the tail slot frees it: no drop for the next push. */
	ASSERT_OK(release1(c.fd, held.index));
	push_rtp(&c, 116, 3, 12);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.drops, 4);
	/* Full again, and now the oldest READY slot can go. */
	push_rtp(&c, 117, 3, 12);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.drops, 5);
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 102);
	ASSERT_OK(release1(c.fd, r.index));
	conservation(c.fd);
	/* Drop-oldest keeps POLLOUT up while READY slots can be dropped. */
	push_rtp(&c, 118, 3, 12);
	{
		struct pollfd p = { .fd = c.fd, .events = POLLOUT };
		struct rtpm_status s;

		get_status(c.fd, &s);
		ASSERT_EQ(s.ready, 16);
		ASSERT_EQ(poll(&p, 1, 0), 1);
		ASSERT_EQ(p.revents, POLLOUT);
	}
	/* A batch reserve on a full ring drops as many as it needs. */
	{
		struct rtpm_slot_ref refs[8];
		uint32_t n = 8;

		ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		ASSERT_EQ(n, 8);
		get_stats(c.fd, &st);
		ASSERT_EQ(st.drops, 13);
	}
}

static void test_stats_conservation(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[64];
	unsigned int seed = 12345, i;
	struct rtpm_stats st;

	chan_setup(&c, 5, SMALL_PAYLOAD, RTPM_DROP_OLDEST, O_NONBLOCK);
	for (i = 0; i < 3000; i++) {
		uint32_t n = 1 + rand_r(&seed) % 20, j;

		switch (rand_r(&seed) % 3) {
		case 0:
			if (batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n))
				break;
			for (j = 0; j < n; j++)
				refs[j].len = 1 + rand_r(&seed) % 100;
			ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, refs, &n));
			break;
		case 1:
			if (batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n)) {
				ASSERT_EQ(errno, EAGAIN);
				break;
			}
			ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, refs,
					&n));
			break;
		default:
			conservation(c.fd);
			break;
		}
	}
	conservation(c.fd);
	get_stats(c.fd, &st);
	ASSERT_TRUE(st.drops > 0);
	ASSERT_EQ(st.popped_packets, st.released);
	ASSERT_EQ(st.illegal_ops, 0);
	ASSERT_EQ(st.malformed, st.pushed_packets);
}

static void test_rtp_tracking(void)
{
	static const uint16_t seqs[] = {
		1, 2, 3, 5,	/* 4 lost */
		4,		/* reordered: no longer lost */
		4,		/* duplicate */
		10,		/* 6..9 lost */
		7,		/* reordered */
		10,		/* duplicate of the newest */
		60000, 60001,	/* far back: a restart, not counted */
		64000,		/* far ahead: 3998 lost */
		63000,		/* far back again: a restart */
	};
	struct chan c = { 0 };
	struct rtpm_stats st;
	uint32_t idx;
	unsigned int i;
	uint8_t *p;

	chan_setup(&c, 6, SMALL_PAYLOAD, RTPM_DROP_OLDEST, O_NONBLOCK);
	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
		push_rtp(&c, seqs[i], 0x11111111, 20);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.rtp_lost, 3 + 3998);	/* 6, 8, 9 and the jump */
	ASSERT_EQ(st.rtp_reordered, 2);
	ASSERT_EQ(st.rtp_duplicates, 2);
	ASSERT_EQ(st.malformed, 0);

	/* A new SSRC restarts tracking; the 16-bit seq wraps cleanly. */
	push_rtp(&c, 65534, 0x22222222, 20);
	push_rtp(&c, 65535, 0x22222222, 20);
	push_rtp(&c, 0, 0x22222222, 20);
	push_rtp(&c, 2, 0x22222222, 20);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.rtp_lost, 3 + 3998 + 1);
	ASSERT_EQ(st.rtp_reordered, 2);
	ASSERT_EQ(st.rtp_duplicates, 2);

	/* Malformed payloads are carried and counted. */
	ASSERT_OK(reserve1(c.fd, &idx));
	p = slot_pay(&c, idx);
	put_rtp(p, 503, 0, 0x22222222, false);
	p[0] = 0x40;			/* version 1 */
	ASSERT_OK(push1(c.fd, idx, 20));
	ASSERT_EQ(c.desc[idx].flags, RTPM_SLOT_F_MALFORMED);
	ASSERT_OK(reserve1(c.fd, &idx));
	put_rtp(slot_pay(&c, idx), 503, 0, 0x22222222, false);
	ASSERT_OK(push1(c.fd, idx, 11));	/* shorter than a header */
	ASSERT_OK(reserve1(c.fd, &idx));
	p = slot_pay(&c, idx);
	put_rtp(p, 503, 0, 0x22222222, false);
	p[0] = 0x8f;			/* 15 CSRCs do not fit in 20 bytes */
	ASSERT_OK(push1(c.fd, idx, 20));
	ASSERT_OK(reserve1(c.fd, &idx));
	p = slot_pay(&c, idx);
	put_rtp(p, 503, 0, 0x22222222, false);
	p[0] = 0xa0;			/* padding that eats the header */
	p[19] = 200;
	ASSERT_OK(push1(c.fd, idx, 20));
	get_stats(c.fd, &st);
	ASSERT_EQ(st.malformed, 4);

	/* Descriptor fields of a valid packet with CSRC, extension, marker. */
	ASSERT_OK(reserve1(c.fd, &idx));
	p = slot_pay(&c, idx);
	put_rtp(p, 3, 0xdeadbeef, 0x22222222, true);
	p[0] = 0x80 | 0x10 | 1;		/* X, CC=1 */
	p[16] = 0xbe;
	p[17] = 0xde;
	p[18] = 0;
	p[19] = 1;			/* one extension word */
	ASSERT_OK(push1(c.fd, idx, 24));
	ASSERT_EQ(c.desc[idx].flags, RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
	ASSERT_EQ(c.desc[idx].rtp_seq, 3);
	ASSERT_EQ(c.desc[idx].rtp_timestamp, 0xdeadbeef);
	ASSERT_EQ(c.desc[idx].ssrc, 0x22222222);
	ASSERT_EQ(c.desc[idx].payload_type, 96);
	ASSERT_EQ(c.desc[idx].pad0, 0);
	ASSERT_EQ(c.desc[idx].pad1, 0);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.rtp_lost, 3 + 3998 + 1);
	ASSERT_EQ(st.malformed, 4);
}

static void test_reset(void)
{
	struct chan c = { 0 };
	struct rtpm_stats st;
	struct rtpm_status s;
	uint32_t idx;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 1, 12);
	push_rtp(&c, 3, 1, 12);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RESET), EBUSY);	/* running */
	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RESET), EBUSY);	/* owned */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_START));
	ASSERT_OK(push1(c.fd, idx, 12));
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	/* READY slots are not owned; RESET discards them. Mapped is fine. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_RESET));
	get_stats(c.fd, &st);
	ASSERT_EQ(st.pushed_packets, 0);
	ASSERT_EQ(st.rtp_lost, 0);
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, 0);
	ASSERT_EQ(s.state, RTPM_STATE_STOPPED);
	ASSERT_EQ(load_acquire(&c.hdr->producer), 0);
	/* The seq tracker starts over too. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_START));
	push_rtp(&c, 1000, 1, 12);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.rtp_lost, 0);
}

static void read_sysfs(const char *attr, char *buf, size_t size)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/misc/%s/%s",
		 strrchr(dev_path, '/') + 1, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		FAIL("open %s: %s", path, strerror(errno));
	n = read(fd, buf, size - 1);
	ASSERT_TRUE(n > 0);
	buf[n] = 0;
	close(fd);
}

static unsigned long long sysfs_value(const char *text, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "%s ", name);
	for (p = text; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, key, strlen(key)))
			return strtoull(p + strlen(key), NULL, 10);
	}
	FAIL("%s missing in sysfs text", name);
}

static void test_sysfs(void)
{
	struct chan c = { 0 };
	struct rtpm_stats st;
	char buf[4096];
	int i;

	chan_setup(&c, SMALL_ORDER, 1000, RTPM_DROP_OLDEST, O_NONBLOCK);
	for (i = 0; i < 20; i++)
		push_rtp(&c, i * 2, 8, 100);
	get_stats(c.fd, &st);
	read_sysfs("stats", buf, sizeof(buf));
	ASSERT_EQ(sysfs_value(buf, "pushed_packets"), st.pushed_packets);
	ASSERT_EQ(sysfs_value(buf, "pushed_bytes"), st.pushed_bytes);
	ASSERT_EQ(sysfs_value(buf, "drops"), st.drops);
	ASSERT_EQ(sysfs_value(buf, "rtp_lost"), st.rtp_lost);
	ASSERT_EQ(sysfs_value(buf, "rtp_lost"), 19);
	ASSERT_EQ(sysfs_value(buf, "illegal_ops"), 0);
	ASSERT_EQ(sysfs_value(buf, "reclaimed"), 0);
	ASSERT_EQ(sysfs_value(buf, "cancelled"), 0);
	ASSERT_EQ(sysfs_value(buf, "denied"), 0);
	ASSERT_EQ(sysfs_value(buf, "evicted"), 0);
	read_sysfs("status", buf, sizeof(buf));
	ASSERT_TRUE(strstr(buf, "state running\n") != NULL);
	ASSERT_TRUE(strstr(buf, "claimed none\n") != NULL);
	ASSERT_OK(claim(c.fd, RTPM_ROLES_ALL));
	read_sysfs("status", buf, sizeof(buf));
	ASSERT_TRUE(strstr(buf, "claimed producer consumer\n") != NULL);
	ASSERT_EQ(sysfs_value(buf, "ready"), 16);
	ASSERT_EQ(sysfs_value(buf, "mappings"), 2);
	read_sysfs("config", buf, sizeof(buf));
	ASSERT_EQ(sysfs_value(buf, "ring_order"), SMALL_ORDER);
	ASSERT_EQ(sysfs_value(buf, "slot_payload"), 1000);
	ASSERT_EQ(sysfs_value(buf, "drop_policy"), RTPM_DROP_OLDEST);
	ASSERT_EQ(sysfs_value(buf, "slot_stride"), 1024);
}

/* ------------------------------------ ABI 2.1: attached sockets, wake-up */

/* A UDP socket of @family bound to loopback on an ephemeral port. */
static int udp_bound(int family, struct sockaddr_storage *addr,
		     socklen_t *alen)
{
	int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0 && family == AF_INET6)
		skip_test("no IPv6 in this kernel: %s", strerror(errno));
	ASSERT_TRUE(s >= 0);
	memset(addr, 0, sizeof(*addr));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)addr;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*alen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*alen = sizeof(*a);
	}
	if (bind(s, (struct sockaddr *)addr, *alen) && family == AF_INET6)
		skip_test("cannot bind ::1 (IPv6 loopback down?): %s",
			  strerror(errno));
	ASSERT_OK(getsockname(s, (struct sockaddr *)addr, alen));
	return s;
}

/* A UDP socket connected to @to. */
static int udp_connected(const struct sockaddr_storage *to, socklen_t alen)
{
	int s = socket(to->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ASSERT_TRUE(s >= 0);
	ASSERT_OK(connect(s, (const struct sockaddr *)to, alen));
	return s;
}

static int attach(int fd, int sock, uint32_t dir, uint32_t rate,
		  uint32_t burst)
{
	struct rtpm_attach a = {
		.fd = sock, .direction = dir, .tx_rate_pps = rate,
		.tx_burst = burst,
	};

	return ioctl(fd, RTPM_IOC_ATTACH, &a);
}

static int detach(int fd, uint32_t dir)
{
	struct rtpm_detach d = { .direction = dir };

	return ioctl(fd, RTPM_IOC_DETACH, &d);
}

static int set_wakeup(int fd, uint32_t slots, uint32_t usecs)
{
	struct rtpm_wakeup w = { .slots = slots, .usecs = usecs };

	return ioctl(fd, RTPM_IOC_SET_WAKEUP, &w);
}

static uint32_t attached(int fd)
{
	struct rtpm_status s;

	get_status(fd, &s);
	return s.attached;
}

/* An RTP packet of @len bytes (>= 12) with a payload pattern from @seq. */
static void send_rtp(int s, uint16_t seq, uint32_t ssrc, size_t len)
{
	uint8_t p[2048];
	size_t i;

	put_rtp(p, seq, seq * 160u, ssrc, false);
	for (i = 12; i < len; i++)
		p[i] = (uint8_t)(seq + i);
	ASSERT_EQ(send(s, p, len, 0), (long long)len);
}

/*
 * Datagrams on loopback are processed in the sender's softirq, usually
 * before send() returns, but not always: wait until the ring counted @n.
 */
static struct rtpm_stats wait_stat(int fd, size_t off, uint64_t n)
{
	struct rtpm_stats st;
	int i;

	for (i = 0; i < 500; i++) {
		get_stats(fd, &st);
		if (*(uint64_t *)((uint8_t *)&st + off) >= n)
			return st;
		sleep_ms(10);
	}
	FAIL("counter at offset %zu stayed below %" PRIu64, off, n);
}

#define WAIT_STAT(fd, field, n) \
	wait_stat(fd, offsetof(struct rtpm_stats, field), n)

/* The socket gets its datagrams itself again (no attachment steals them). */
static void assert_socket_receives(int rx, int tx)
{
	char buf[64];
	struct pollfd p = { .fd = rx, .events = POLLIN };

	send_rtp(tx, 7, 7, 40);
	ASSERT_EQ(poll(&p, 1, 5000), 1);
	ASSERT_EQ(recv(rx, buf, sizeof(buf), MSG_DONTWAIT), 40);
}

static void attach_rx_in_order(int family)
{
	struct sockaddr_storage a;
	struct rtpm_info info;
	struct rtpm_stats st;
	struct chan c = { 0 };
	socklen_t alen;
	uint64_t last_ns = 0;
	int rx, tx, i;
	char b;

	chan_setup(&c, 6, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, O_NONBLOCK);
	rx = udp_bound(family, &a, &alen);
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));
	ASSERT_EQ(attached(c.fd), RTPM_ATTACHED_RX);
	get_info(c.fd, &info);
	ASSERT_EQ(info.file_roles, RTPM_ROLE_PRODUCER);
	for (i = 0; i < 40; i++)
		send_rtp(tx, 100 + i, 0x1234, 12 + 4 * i);
	WAIT_STAT(c.fd, pushed_packets, 40);
	for (i = 0; i < 40; i++) {
		struct rtpm_slot_ref r;
		const struct rtpm_slot_desc *d;
		const uint8_t *p;
		int k;

		ASSERT_OK(pop1(c.fd, &r));
		d = &c.desc[r.index];
		p = slot_pay(&c, r.index);
		ASSERT_EQ(r.len, 12 + 4 * i);
		ASSERT_EQ(d->rtp_seq, 100 + i);
		ASSERT_EQ(d->ssrc, 0x1234);
		ASSERT_EQ(d->rtp_timestamp, (100u + i) * 160u);
		ASSERT_EQ(r.flags & RTPM_SLOT_F_RTP, RTPM_SLOT_F_RTP);
		ASSERT_TRUE(r.arrival_ns >= last_ns && r.arrival_ns);
		last_ns = r.arrival_ns;
		for (k = 12; k < (int)r.len; k++)
			ASSERT_EQ(p[k], (uint8_t)(100 + i + k));
		ASSERT_OK(release1(c.fd, r.index));
	}
	get_stats(c.fd, &st);
	ASSERT_EQ(st.pushed_packets, 40);
	ASSERT_EQ(st.rtp_lost, 0);
	ASSERT_EQ(st.malformed, 0);
	/* Nothing reached the socket's own receive queue. */
	ASSERT_ERRNO(recv(rx, &b, 1, MSG_DONTWAIT), EAGAIN);
}

static void test_attach_rx_ipv4_in_order(void)
{
	attach_rx_in_order(AF_INET);
}

static void test_attach_rx_ipv6_in_order(void)
{
	attach_rx_in_order(AF_INET6);
}

/* Oversize, not RTP, empty, full ring, stopped: counted, never queued. */
static void test_attach_rx_counts_what_it_cannot_keep(void)
{
	struct sockaddr_storage a;
	struct rtpm_stats st;
	struct rtpm_status s;
	struct chan c = { 0 };
	uint8_t junk[300];
	socklen_t alen;
	int rx, tx, i;
	char b;

	chan_setup(&c, 2, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, O_NONBLOCK);
	rx = udp_bound(AF_INET, &a, &alen);
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));

	memset(junk, 0, sizeof(junk));
	send_rtp(tx, 1, 1, SMALL_PAYLOAD + 1);		/* oversize */
	WAIT_STAT(c.fd, rx_oversize, 1);
	ASSERT_EQ(send(tx, junk, 20, 0), 20);		/* not RTP: kept */
	ASSERT_EQ(send(tx, junk, 0, 0), 0);		/* empty: dropped */
	st = WAIT_STAT(c.fd, malformed, 2);
	ASSERT_EQ(st.pushed_packets, 1);
	send_rtp(tx, 2, 1, SMALL_PAYLOAD);		/* exactly fits */
	for (i = 3; i < 8; i++)				/* 2 fit, 3 over */
		send_rtp(tx, i, 1, 100);
	st = WAIT_STAT(c.fd, overruns, 3);
	ASSERT_EQ(st.pushed_packets, 4);
	get_status(c.fd, &s);
	ASSERT_EQ(s.ready, 4);
	/* The non-RTP slot carries its bytes, flagged. */
	{
		struct rtpm_slot_ref r;

		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(r.len, 20);
		ASSERT_EQ(r.flags, RTPM_SLOT_F_MALFORMED);
		ASSERT_OK(release1(c.fd, r.index));
	}
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	send_rtp(tx, 9, 1, 100);
	st = WAIT_STAT(c.fd, rx_discarded, 1);
	ASSERT_EQ(st.pushed_packets, 4);
	/* STOP keeps the attachment; nothing went to the socket. */
	ASSERT_EQ(attached(c.fd), RTPM_ATTACHED_RX);
	ASSERT_ERRNO(recv(rx, &b, 1, MSG_DONTWAIT), EAGAIN);
	conservation(c.fd);
}

static void test_attach_errors(void)
{
	struct sockaddr_storage a;
	struct rtpm_stats st0, st;
	struct chan c = { 0 };
	struct rtpm_attach bad;
	struct rtpm_config cfg = {
		.ring_order = SMALL_ORDER, .slot_payload = SMALL_PAYLOAD,
	};
	socklen_t alen;
	int rx, rx2, unconn, tcp, other, ro;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	rx = udp_bound(AF_INET, &a, &alen);
	rx2 = udp_bound(AF_INET, &a, &alen);
	unconn = socket(AF_INET, SOCK_DGRAM, 0);
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_TRUE(unconn >= 0 && tcp >= 0);

	ASSERT_ERRNO(attach(c.fd, c.fd, RTPM_DIR_RX, 0, 0), ENOTSOCK);
	ASSERT_ERRNO(attach(c.fd, 999, RTPM_DIR_RX, 0, 0), EBADF);
	ASSERT_ERRNO(attach(c.fd, tcp, RTPM_DIR_RX, 0, 0), EPROTONOSUPPORT);
	ASSERT_ERRNO(attach(c.fd, rx, 0, 0, 0), EINVAL);
	ASSERT_ERRNO(attach(c.fd, rx, 3, 0, 0), EINVAL);
	ASSERT_ERRNO(attach(c.fd, rx, RTPM_DIR_RX, 100, 0), EINVAL);
	ASSERT_ERRNO(attach(c.fd, unconn, RTPM_DIR_TX, 0, 0), ENOTCONN);
	memset(&bad, 0, sizeof(bad));
	bad.fd = rx;
	bad.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_ATTACH, &bad), EINVAL);
	bad.flags = 0;
	bad.reserved[2] = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_ATTACH, &bad), EINVAL);
	ASSERT_ERRNO(detach(c.fd, RTPM_DIR_RX), ENOENT);
	ASSERT_ERRNO(detach(c.fd, 7), EINVAL);

	/* A read-only file may not attach. */
	ro = open(dev_path, O_RDONLY);
	ASSERT_TRUE(ro >= 0);
	ASSERT_ERRNO(attach(ro, rx, RTPM_DIR_RX, 0, 0), EBADF);
	close(ro);

	/* Another file holds the producer role: refused, counted. */
	other = open_dev(0);
	ASSERT_OK(claim(other, RTPM_ROLE_PRODUCER));
	get_stats(c.fd, &st0);
	ASSERT_ERRNO(attach(c.fd, rx, RTPM_DIR_RX, 0, 0), EPERM);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.denied, st0.denied + 1);
	close(other);

	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));
	/* One socket per direction; one in-kernel receiver per socket. */
	ASSERT_ERRNO(attach(c.fd, rx2, RTPM_DIR_RX, 0, 0), EBUSY);
	other = open_dev(0);
	ASSERT_ERRNO(attach(other, rx, RTPM_DIR_RX, 0, 0), EBUSY);
	/* Another writer with CAP_NET_ADMIN may detach it; first CONFIGURE. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	chan_unmap(&c);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CONFIGURE, &cfg), EBUSY);
	ASSERT_OK(detach(other, RTPM_DIR_RX));
	ASSERT_EQ(attached(c.fd), 0);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_CONFIGURE, &cfg));
	close(other);
}

/*
 * Every way an attachment ends, in every order against the socket's and
 * the channel's close, with traffic: no leak (the socket works normally
 * afterwards), no use-after-free (KASAN in the sanitizer boot).
 */
static void test_attach_rx_teardown_orders(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int order;

	for (order = 0; order < 6; order++) {
		int ch = open_dev(O_NONBLOCK), watch = open_dev(0), dup_ch;
		int rx = udp_bound(AF_INET, &a, &alen);
		int tx = udp_connected(&a, alen);
		pid_t pid;

		configure(ch, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_OLDEST);
		ASSERT_OK(ioctl(ch, RTPM_IOC_START));
		ASSERT_OK(attach(ch, rx, RTPM_DIR_RX, 0, 0));
		send_rtp(tx, 1, 1, 50);
		WAIT_STAT(watch, pushed_packets, 1);
		switch (order) {
		case 0:	/* DETACH, then the socket, then the channel */
			ASSERT_OK(detach(ch, RTPM_DIR_RX));
			ASSERT_EQ(attached(watch), 0);
			assert_socket_receives(rx, tx);
			close(rx);
			close(ch);
			break;
		case 1:	/* the socket's close detaches */
			close(rx);
			ASSERT_EQ(attached(watch), 0);
			ASSERT_ERRNO(detach(ch, RTPM_DIR_RX), ENOENT);
			close(ch);
			break;
		case 2:	/* the channel's close detaches */
			close(ch);
			ASSERT_EQ(attached(watch), 0);
			assert_socket_receives(rx, tx);
			close(rx);
			break;
		case 3:	/* STOP, RESET and START keep it; then the socket */
			ASSERT_OK(ioctl(ch, RTPM_IOC_STOP));
			ASSERT_OK(ioctl(ch, RTPM_IOC_RESET));
			ASSERT_OK(ioctl(ch, RTPM_IOC_START));
			ASSERT_EQ(attached(watch), RTPM_ATTACHED_RX);
			send_rtp(tx, 2, 1, 50);
			WAIT_STAT(watch, pushed_packets, 1);
			close(rx);
			close(ch);
			ASSERT_EQ(attached(watch), 0);
			break;
		case 4:	/* a dup of the channel file keeps it until its close */
			dup_ch = dup(ch);
			close(ch);
			ASSERT_EQ(attached(watch), RTPM_ATTACHED_RX);
			close(dup_ch);
			ASSERT_EQ(attached(watch), 0);
			assert_socket_receives(rx, tx);
			close(rx);
			break;
		default: /* the attaching process is killed */
			close(ch);
			pid = fork();
			ASSERT_TRUE(pid >= 0);
			if (!pid) {
				int mine = open_dev(0);

				if (attach(mine, rx, RTPM_DIR_RX, 0, 0))
					_exit(1);
				pause();
				_exit(0);
			}
			while (attached(watch) != RTPM_ATTACHED_RX)
				sleep_ms(5);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			ASSERT_EQ(attached(watch), 0);
			assert_socket_receives(rx, tx);
			close(rx);
			break;
		}
		close(tx);
		close(watch);
	}
}

/* Attach and end it in random orders while a sender floods the port. */
static void test_attach_churn_under_traffic(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	pid_t sender;
	int i, probe;

	probe = udp_bound(AF_INET, &a, &alen);
	close(probe);
	sender = fork();
	ASSERT_TRUE(sender >= 0);
	if (!sender) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		uint8_t p[200];
		uint16_t seq = 0;

		memset(p, 0, sizeof(p));
		for (;;) {
			put_rtp(p, seq++, 0, 5, false);
			/* Unbound moments give ECONNREFUSED: ignored. */
			sendto(s, p, sizeof(p), 0, (struct sockaddr *)&a, alen);
		}
	}
	for (i = 0; i < 300; i++) {
		int ch = open_dev(O_NONBLOCK), one = 1;
		int rx = socket(AF_INET, SOCK_DGRAM, 0);
		struct rtpm_slot_ref r;

		ASSERT_TRUE(rx >= 0);
		setsockopt(rx, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ASSERT_OK(bind(rx, (struct sockaddr *)&a, alen));
		if (i == 0) {
			configure(ch, SMALL_ORDER, SMALL_PAYLOAD,
				  RTPM_DROP_OLDEST);
			ASSERT_OK(ioctl(ch, RTPM_IOC_START));
		}
		ASSERT_OK(attach(ch, rx, RTPM_DIR_RX, 0, 0));
		if (i % 2)
			ioctl(ch, RTPM_IOC_POP_SLOT, &r);	/* hold one */
		switch (i % 3) {
		case 0:
			ASSERT_OK(detach(ch, RTPM_DIR_RX));
			close(rx);
			close(ch);
			break;
		case 1:
			close(rx);
			close(ch);
			break;
		default:
			close(ch);
			close(rx);
			break;
		}
	}
	kill(sender, SIGKILL);
	waitpid(sender, NULL, 0);
	probe = open_dev(0);
	ASSERT_EQ(attached(probe), 0);
	conservation(probe);
	close(probe);
}

/* The channel file holds the module: no unload while attached. */
static void test_attach_rmmod_refused(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ch = open_dev(0), rx = udp_bound(AF_INET, &a, &alen);

	ASSERT_OK(attach(ch, rx, RTPM_DIR_RX, 0, 0));
	errno = 0;
	ASSERT_EQ(syscall(SYS_delete_module, "rtp_mgr", O_NONBLOCK), -1);
	ASSERT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);
	ASSERT_EQ(attached(ch), RTPM_ATTACHED_RX);
}

static void test_wakeup_rule(void)
{
	struct rtpm_wakeup w = { 0 };
	struct rtpm_stats st0, st;
	struct pollfd p;
	struct chan c = { 0 };
	struct timespec t0, t1;
	char buf[64];
	int i;

	chan_setup(&c, 6, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, O_NONBLOCK);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_WAKEUP, &w));
	ASSERT_EQ(w.slots, 1);
	ASSERT_EQ(w.usecs, 0);
	ASSERT_ERRNO(set_wakeup(c.fd, 0, 100), EINVAL);
	ASSERT_ERRNO(set_wakeup(c.fd, 4, 0), EINVAL);	/* would never wake */
	ASSERT_ERRNO(set_wakeup(c.fd, 1, RTPM_WAKE_USECS_MAX + 1), EINVAL);
	ASSERT_ERRNO(set_wakeup(c.fd, RTPM_WAKE_SLOTS_MAX + 1, 10), EINVAL);
	w.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_SET_WAKEUP, &w), EINVAL);

	/* 4 slots or 1 s: three pushes are not due, the fourth is. */
	ASSERT_OK(set_wakeup(c.fd, 4, RTPM_WAKE_USECS_MAX));
	read_sysfs("wakeup", buf, sizeof(buf));
	ASSERT_TRUE(!strcmp(buf, "4 1000000\n"));
	get_stats(c.fd, &st0);
	p.fd = c.fd;
	p.events = POLLIN;
	for (i = 0; i < 3; i++)
		push_rtp(&c, i, 1, 40);
	ASSERT_EQ(poll(&p, 1, 0), 0);
	push_rtp(&c, 3, 1, 40);
	ASSERT_EQ(poll(&p, 1, 0), 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.wakeups, st0.wakeups + 1);
	pop_release_all(&c);

	/* One slot: due when the timer fires, never before (1 s). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	push_rtp(&c, 4, 1, 40);
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT_EQ(poll(&p, 1, 10000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* An hrtimer never fires early; late is fine (a busy host). */
	ASSERT_TRUE((t1.tv_sec - t0.tv_sec) * 1000000000LL +
		    (t1.tv_nsec - t0.tv_nsec) >= 900000000LL);
	pop_release_all(&c);

	/* A non-blocking POP takes what is READY before it is due. */
	push_rtp(&c, 5, 1, 40);
	ASSERT_EQ(poll(&p, 1, 0), 0);
	pop_release_all(&c);

	/* STOP hands on what is left at once. */
	push_rtp(&c, 6, 1, 40);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	p.events = POLLIN;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_TRUE(p.revents & POLLIN);

	/* sysfs writes the rule too (root); bad text is refused. */
	{
		char path[256];
		int fd;

		snprintf(path, sizeof(path), "/sys/class/misc/%s/wakeup",
			 strrchr(dev_path, '/') + 1);
		fd = open(path, O_WRONLY);
		ASSERT_TRUE(fd >= 0);
		ASSERT_EQ(write(fd, "8 2000\n", 7), 7);
		ASSERT_ERRNO(write(fd, "8 0\n", 4), EINVAL);
		ASSERT_ERRNO(write(fd, "x\n", 2), EINVAL);
		close(fd);
		ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_WAKEUP, &w));
		ASSERT_EQ(w.slots, 8);
		ASSERT_EQ(w.usecs, 2000);
	}
	ASSERT_OK(set_wakeup(c.fd, 1, 0));
}

/* Kernel RX with coalescing: 8 datagrams, one wake-up. */
static void test_attach_rx_coalesced_wakeups(void)
{
	struct sockaddr_storage a;
	struct rtpm_stats st0, st;
	struct pollfd p;
	struct chan c = { 0 };
	socklen_t alen;
	int rx, tx, i;

	chan_setup(&c, 6, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, O_NONBLOCK);
	rx = udp_bound(AF_INET, &a, &alen);
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));
	ASSERT_OK(set_wakeup(c.fd, 8, RTPM_WAKE_USECS_MAX));
	get_stats(c.fd, &st0);
	for (i = 0; i < 7; i++)
		send_rtp(tx, i, 3, 60);
	WAIT_STAT(c.fd, pushed_packets, 7);
	p.fd = c.fd;
	p.events = POLLIN;
	ASSERT_EQ(poll(&p, 1, 0), 0);
	send_rtp(tx, 7, 3, 60);
	ASSERT_EQ(poll(&p, 1, 10000), 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.wakeups, st0.wakeups + 1);
	ASSERT_EQ(st.pushed_packets, 8);
	ASSERT_OK(set_wakeup(c.fd, 1, 0));
}

/* Review finding: ATTACH and DETACH racing never leave a dangling socket. */
static void test_attach_detach_race(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ch = open_dev(0), rx = udp_bound(AF_INET, &a, &alen);
	int tx = udp_connected(&a, alen), i;
	pid_t pid;

	configure(ch, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_OLDEST);
	ASSERT_OK(ioctl(ch, RTPM_IOC_START));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		/* An administrator's file detaches whatever is attached. */
		int other = open_dev(0);

		for (;;)
			detach(other, RTPM_DIR_RX);
	}
	for (i = 0; i < 3000; i++) {
		if (!attach(ch, rx, RTPM_DIR_RX, 0, 0))
			send_rtp(tx, i, 1, 40);
		else
			ASSERT_TRUE(errno == EBUSY || errno == EPERM);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	detach(ch, RTPM_DIR_RX);
	ASSERT_EQ(attached(ch), 0);
	/* Nothing dangles: the socket attaches again, and closing ends it. */
	ASSERT_OK(attach(ch, rx, RTPM_DIR_RX, 0, 0));
	close(rx);
	ASSERT_EQ(attached(ch), 0);
	close(tx);
}

/*
 * Review finding: a slot that becomes poppable because the one ahead of
 * it was cancelled or reclaimed wakes the consumer (default rule).
 */
static void test_wakeup_after_cancel_and_reclaim(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct pollfd p;
	uint32_t x, a, b;
	int other;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	p.fd = c.fd;
	p.events = POLLIN;

	/* CANCEL of A makes B poppable. */
	ASSERT_OK(reserve1(c.fd, &x));
	ASSERT_OK(reserve1(c.fd, &a));
	ASSERT_OK(reserve1(c.fd, &b));
	put_rtp(slot_pay(&c, x), 1, 0, 1, false);
	put_rtp(slot_pay(&c, b), 3, 0, 1, false);
	ASSERT_OK(push1(c.fd, x, 20));
	ASSERT_OK(push1(c.fd, b, 20));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_OK(release1(c.fd, r.index));
	r.index = a;
	r.len = 0;
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_CANCEL_SLOT, &r));
	ASSERT_EQ(poll(&p, 1, 2000), 1);
	pop_release_all(&c);

	/* A closing file's reclaim of A makes B poppable. */
	other = open_dev(0);
	ASSERT_OK(reserve1(c.fd, &x));
	ASSERT_OK(reserve1(other, &a));
	ASSERT_OK(reserve1(c.fd, &b));
	ASSERT_OK(push1(c.fd, x, 20));
	ASSERT_OK(push1(c.fd, b, 20));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_OK(release1(c.fd, r.index));
	close(other);
	ASSERT_EQ(poll(&p, 1, 2000), 1);
	pop_release_all(&c);
}

/* Review finding: a slot pushed after STOP is popped, not -EPIPE. */
static void test_pop_after_stop_with_late_push(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	uint32_t a, b;
	int blocking;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	blocking = c.fd;
	ASSERT_OK(set_wakeup(blocking, 32, RTPM_WAKE_USECS_MAX));
	ASSERT_OK(reserve1(blocking, &a));
	ASSERT_OK(reserve1(blocking, &b));
	ASSERT_OK(push1(blocking, a, 20));
	ASSERT_OK(ioctl(blocking, RTPM_IOC_STOP));
	ASSERT_OK(pop1(blocking, &r));
	ASSERT_EQ(r.index, a);
	ASSERT_OK(release1(blocking, a));
	ASSERT_OK(push1(blocking, b, 20));	/* reserved before STOP */
	ASSERT_OK(pop1(blocking, &r));
	ASSERT_EQ(r.index, b);
	ASSERT_OK(release1(blocking, b));
	ASSERT_ERRNO(pop1(blocking, &r), EPIPE);
	ASSERT_OK(set_wakeup(blocking, 1, 0));
}

/* Review finding: the role behind an attachment is not given away. */
static void test_attach_role_stays_with_the_attachment(void)
{
	struct sockaddr_storage a;
	struct rtpm_reclaim rc = { .flags = RTPM_RECLAIM_ROLES };
	struct rtpm_status s;
	socklen_t alen;
	int ch = open_dev(0), other = open_dev(0);
	int rcv = udp_bound(AF_INET, &a, &alen), tx = udp_connected(&a, alen);

	ASSERT_OK(attach(ch, tx, RTPM_DIR_TX, 0, 0));
	ASSERT_ERRNO(claim(ch, 0), EBUSY);
	ASSERT_ERRNO(claim(other, RTPM_ROLE_CONSUMER), EBUSY);
	ASSERT_OK(ioctl(other, RTPM_IOC_RECLAIM, &rc));
	get_status(ch, &s);
	ASSERT_EQ(s.claimed & RTPM_ROLE_CONSUMER, RTPM_ROLE_CONSUMER);
	/* A role CLAIMed before ATTACH outlives DETACH. */
	ASSERT_OK(detach(ch, RTPM_DIR_TX));
	ASSERT_OK(claim(ch, RTPM_ROLE_CONSUMER));
	ASSERT_OK(attach(ch, tx, RTPM_DIR_TX, 0, 0));
	ASSERT_OK(detach(ch, RTPM_DIR_TX));
	get_status(ch, &s);
	ASSERT_EQ(s.claimed, RTPM_ROLE_CONSUMER);
	close(rcv);
}

/* Review finding: pacing arguments that mean nothing are refused. */
static void test_attach_tx_arguments(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ch = open_dev(0);
	int rcv = udp_bound(AF_INET, &a, &alen), tx = udp_connected(&a, alen);

	ASSERT_ERRNO(attach(ch, tx, 0, 0, 0), EINVAL);
	ASSERT_ERRNO(attach(ch, tx, RTPM_DIR_TX, 0, 4), EINVAL);
	ASSERT_ERRNO(attach(ch, tx, RTPM_DIR_TX, 1000000001, 0), EINVAL);
	ASSERT_ERRNO(attach(ch, tx, RTPM_DIR_TX, 1000, RTPM_TX_BURST_MAX + 1),
		     EINVAL);
	ASSERT_OK(attach(ch, tx, RTPM_DIR_TX, 1000000000, RTPM_TX_BURST_MAX));
	ASSERT_OK(detach(ch, RTPM_DIR_TX));
	close(rcv);
}

/*
 * Review finding: a UDP GRO super-packet (receiver with UDP_GRO, sender
 * with UDP_SEGMENT, over loopback) becomes one slot per datagram.
 */
static void test_attach_rx_gro_is_split(void)
{
	struct sockaddr_storage a;
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	uint8_t p[450];
	socklen_t alen;
	int rx, tx, on = 1, seg = 100, i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	rx = udp_bound(AF_INET, &a, &alen);
	tx = udp_connected(&a, alen);
	if (setsockopt(rx, IPPROTO_UDP, 104 /* UDP_GRO */, &on, sizeof(on)) ||
	    setsockopt(tx, IPPROTO_UDP, 103 /* UDP_SEGMENT */, &seg,
		       sizeof(seg)))
		skip_test("no UDP_GRO/UDP_SEGMENT here: %s", strerror(errno));
	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));
	for (i = 0; i < 4; i++)
		put_rtp(p + i * 100, 10 + i, 0, 4, false);
	put_rtp(p + 400, 14, 0, 4, false);
	ASSERT_EQ(send(tx, p, 450, 0), 450);
	WAIT_STAT(c.fd, pushed_packets, 5);
	for (i = 0; i < 5; i++) {
		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(r.len, i < 4 ? 100 : 50);
		ASSERT_EQ(c.desc[r.index].rtp_seq, 10 + i);
		ASSERT_OK(release1(c.fd, r.index));
	}
}

/* Review finding: a tiny send buffer is waited out, nothing is dropped. */
static void test_attach_tx_small_sndbuf_loses_nothing(void)
{
	struct sockaddr_storage a;
	struct rtpm_stats st;
	struct chan c = { 0 };
	socklen_t alen;
	char buf[2048];
	int rcv, tx, i, big = 1 << 23, small = 4096;

	chan_setup(&c, 10, 1200, RTPM_DROP_REJECT_NEWEST, 0);
	rcv = udp_bound(AF_INET, &a, &alen);
	/* Room for all 1000 (SO_RCVBUF would be capped at rmem_max). */
	ASSERT_OK(setsockopt(rcv, SOL_SOCKET, SO_RCVBUFFORCE, &big,
			     sizeof(big)));
	tx = udp_connected(&a, alen);
	ASSERT_OK(setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
	ASSERT_OK(attach(c.fd, tx, RTPM_DIR_TX, 0, 0));
	for (i = 0; i < 1000; i++)
		push_rtp(&c, i, 6, 1000);
	for (i = 0; i < 1000; i++) {
		struct pollfd p = { .fd = rcv, .events = POLLIN };

		ASSERT_EQ(poll(&p, 1, 5000), 1);
		ASSERT_EQ(recv(rcv, buf, sizeof(buf), 0), 1000);
	}
	st = WAIT_STAT(c.fd, tx_sent, 1000);
	ASSERT_EQ(st.tx_errors, 0);
	ASSERT_OK(detach(c.fd, RTPM_DIR_TX));
	close(tx);
}

/* RFC 3550 numbers for a synthetic stream with known loss and jitter. */
static void test_quality_rfc3550(void)
{
	struct rtpm_clock_rate cr = { .hz = 90000 };
	struct rtpm_quality q;
	struct chan c = { 0 };
	uint64_t t0 = 1000000000ULL;
	int i;

	chan_setup(&c, 8, SMALL_PAYLOAD, RTPM_DROP_OLDEST, O_NONBLOCK);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_QUALITY, &q));
	ASSERT_EQ(q.ssrc, 0);
	ASSERT_EQ(q.received, 0);
	cr.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_SET_CLOCK_RATE, &cr), EINVAL);
	cr.flags = 0;
	cr.hz = RTPM_CLOCK_RATE_MAX + 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_SET_CLOCK_RATE, &cr), EINVAL);
	cr.hz = 90000;
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_SET_CLOCK_RATE, &cr));
	/*
	 * 100 packets 10 ms (900 ticks) apart, seq 65500.. (wraps), with 3
	 * missing (a burst of 2 and 1 alone); the arrival of every odd packet
	 * is 1 ms late: |D| alternates 90 ticks, so J converges to 90.
	 */
	for (i = 0; i < 103; i++) {
		uint16_t seq = (uint16_t)(65500 + i);
		uint64_t arrival = t0 + (uint64_t)i * 10000000ULL +
				   (i % 2 ? 1000000ULL : 0);
		struct rtpm_slot_ref ref = { 0 };
		uint32_t index;

		if (i == 40 || i == 41 || i == 70)
			continue;
		ASSERT_OK(reserve1(c.fd, &index));
		put_rtp(slot_pay(&c, index), seq, 1000 + i * 900u, 77, false);
		ref.index = index;
		ref.len = 40;
		ref.arrival_ns = arrival;
		ASSERT_OK(ioctl(c.fd, RTPM_IOC_PUSH_SLOT, &ref));
	}
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_QUALITY, &q));
	ASSERT_EQ(q.ssrc, 77);
	ASSERT_EQ(q.clock_rate, 90000);
	ASSERT_EQ(q.received, 100);
	ASSERT_EQ(q.expected, 103);
	ASSERT_EQ(q.lost, 3);
	ASSERT_EQ(q.base_seq, 65500);
	ASSERT_EQ(q.ext_max_seq, 65536 + (uint16_t)(65500 + 102));
	ASSERT_EQ(q.max_loss_burst, 2);
	ASSERT_TRUE(q.jitter >= 80 && q.jitter <= 90);
	ASSERT_EQ(q.jitter_us, (uint64_t)q.jitter * 1000000 / 90000);
	ASSERT_EQ(q.ssrc_changes, 0);
	/* A duplicate makes lost smaller (A.3), a new SSRC starts over. */
	push_rtp(&c, (uint16_t)(65500 + 102), 77, 40);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_QUALITY, &q));
	ASSERT_EQ(q.lost, 2);
	push_rtp(&c, 5, 78, 40);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_GET_QUALITY, &q));
	ASSERT_EQ(q.ssrc, 78);
	ASSERT_EQ(q.ssrc_changes, 1);
	ASSERT_EQ(q.received, 1);
	ASSERT_EQ(q.expected, 1);
	/* /proc/driver/rtp_mgr shows the channel's line. */
	{
		char buf[8192];
		int fd = open("/proc/driver/rtp_mgr", O_RDONLY);
		ssize_t n;

		ASSERT_TRUE(fd >= 0);
		n = read(fd, buf, sizeof(buf) - 1);
		ASSERT_TRUE(n > 0);
		buf[n] = 0;
		ASSERT_TRUE(strstr(buf, "0x0000004e") != NULL);
		close(fd);
	}
	cr.hz = 0;
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_SET_CLOCK_RATE, &cr));
}

/* ------------------------------------------- ABI 2.1: netlink events */

/* One netlink request/response: the controller's answer for @name. */
static void genl_resolve(int s, const char *name, uint16_t *family,
			 uint32_t *group)
{
	struct {
		struct nlmsghdr n;
		struct genlmsghdr g;
		char buf[256];
	} req;
	char resp[8192];
	struct nlattr *na;
	struct nlmsghdr *n;
	int len, rem;

	memset(&req, 0, sizeof(req));
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.n.nlmsg_seq = 1;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	na = (struct nlattr *)req.buf;
	na->nla_type = CTRL_ATTR_FAMILY_NAME;
	na->nla_len = NLA_HDRLEN + strlen(name) + 1;
	strcpy((char *)na + NLA_HDRLEN, name);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
	ASSERT_EQ(send(s, &req, req.n.nlmsg_len, 0), req.n.nlmsg_len);
	len = recv(s, resp, sizeof(resp), 0);
	ASSERT_TRUE(len > 0);
	n = (struct nlmsghdr *)resp;
	if (n->nlmsg_type == NLMSG_ERROR)
		FAIL("generic netlink family %s not found", name);
	*family = 0;
	*group = 0;
	na = (struct nlattr *)((char *)NLMSG_DATA(n) + GENL_HDRLEN);
	rem = n->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	while (rem >= (int)NLA_HDRLEN && na->nla_len >= NLA_HDRLEN &&
	       na->nla_len <= rem) {
		if (na->nla_type == CTRL_ATTR_FAMILY_ID)
			*family = *(uint16_t *)((char *)na + NLA_HDRLEN);
		if (na->nla_type == CTRL_ATTR_MCAST_GROUPS) {
			struct nlattr *grp = (void *)((char *)na + NLA_HDRLEN);
			int grem = na->nla_len - NLA_HDRLEN;

			while (grem >= (int)NLA_HDRLEN && grp->nla_len >= NLA_HDRLEN) {
				struct nlattr *a = (void *)((char *)grp + NLA_HDRLEN);
				int arem = grp->nla_len - NLA_HDRLEN;
				uint32_t id = 0;
				bool match = false;

				while (arem >= (int)NLA_HDRLEN &&
				       a->nla_len >= NLA_HDRLEN) {
					if (a->nla_type == CTRL_ATTR_MCAST_GRP_ID)
						id = *(uint32_t *)((char *)a + NLA_HDRLEN);
					if (a->nla_type == CTRL_ATTR_MCAST_GRP_NAME &&
					    !strcmp((char *)a + NLA_HDRLEN,
						    RTPM_GENL_MCGRP_EVENTS))
						match = true;
					arem -= NLA_ALIGN(a->nla_len);
					a = (void *)((char *)a + NLA_ALIGN(a->nla_len));
				}
				if (match)
					*group = id;
				grem -= NLA_ALIGN(grp->nla_len);
				grp = (void *)((char *)grp + NLA_ALIGN(grp->nla_len));
			}
		}
		rem -= NLA_ALIGN(na->nla_len);
		na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
	}
	ASSERT_TRUE(*family != 0);
	ASSERT_TRUE(*group != 0);
}

/* A socket in the events group of the rtp_mgr family. */
static int events_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	uint16_t family;
	uint32_t group;

	ASSERT_TRUE(s >= 0);
	ASSERT_OK(bind(s, (struct sockaddr *)&sa, sizeof(sa)));
	genl_resolve(s, RTPM_GENL_NAME, &family, &group);
	ASSERT_OK(setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group,
			     sizeof(group)));
	return s;
}

struct event {
	uint32_t channel, type, pid;
	uint64_t count, time_ns;
};

/* The next event of @type on this test's channel, within @ms. */
static struct event event_expect(int s, uint32_t type, int ms)
{
	uint32_t channel = (uint32_t)strtoul(strrchr(dev_path, 'r') + 1,
					     NULL, 10);
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		char buf[8192];
		struct nlmsghdr *n;
		int len, left;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
				  (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, left) != 1)
			FAIL("no event %u on channel %u within %d ms", type,
			     channel, ms);
		len = recv(s, buf, sizeof(buf), 0);
		ASSERT_TRUE(len > 0);
		for (n = (struct nlmsghdr *)buf; NLMSG_OK(n, (unsigned int)len);
		     n = NLMSG_NEXT(n, len)) {
			struct nlattr *a = (void *)((char *)NLMSG_DATA(n) +
						    GENL_HDRLEN);
			int rem = n->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
			struct event e = { 0 };

			while (rem >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN) {
				void *v = (char *)a + NLA_HDRLEN;

				switch (a->nla_type) {
				case RTPM_GENL_A_CHANNEL:
					e.channel = *(uint32_t *)v;
					break;
				case RTPM_GENL_A_EVENT:
					e.type = *(uint32_t *)v;
					break;
				case RTPM_GENL_A_PID:
					e.pid = *(uint32_t *)v;
					break;
				case RTPM_GENL_A_COUNT:
					memcpy(&e.count, v, 8);
					break;
				case RTPM_GENL_A_TIME_NS:
					memcpy(&e.time_ns, v, 8);
					break;
				}
				rem -= NLA_ALIGN(a->nla_len);
				a = (void *)((char *)a + NLA_ALIGN(a->nla_len));
			}
			if (e.channel == channel && e.type == type) {
				ASSERT_TRUE(e.time_ns != 0);
				return e;
			}
		}
	}
}

/* Every event type, each from the scenario that causes it. */
static void test_events(void)
{
	struct sockaddr_storage a;
	struct rtpm_reclaim rc = { 0 };
	struct rtpm_slot_ref r;
	struct event e;
	socklen_t alen;
	int ev = events_open(), ch = open_dev(O_NONBLOCK), rx, tx, other, i;
	uint32_t idx;

	configure(ch, 2, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	e = event_expect(ev, RTPM_EVENT_STOP, 2000);
	ASSERT_EQ(e.pid, getpid());
	event_expect(ev, RTPM_EVENT_CONFIGURE, 2000);
	ASSERT_OK(ioctl(ch, RTPM_IOC_RESET));
	event_expect(ev, RTPM_EVENT_RESET, 2000);
	ASSERT_OK(ioctl(ch, RTPM_IOC_START));
	event_expect(ev, RTPM_EVENT_START, 2000);

	rx = udp_bound(AF_INET, &a, &alen);
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(ch, rx, RTPM_DIR_RX, 0, 0));
	event_expect(ev, RTPM_EVENT_ATTACH_RX, 2000);
	/* 4 slots: seq 0, 1, then a gap of 5, then 3 more that do not fit. */
	send_rtp(tx, 0, 9, 40);
	send_rtp(tx, 1, 9, 40);
	send_rtp(tx, 7, 9, 40);
	for (i = 8; i < 12; i++)
		send_rtp(tx, i, 9, 40);
	e = event_expect(ev, RTPM_EVENT_LOSS, 2000);
	ASSERT_TRUE(e.count >= 1 && e.count <= 5);
	/* Rate-limited: the overruns of this burst may follow later. */
	sleep_ms(RTPM_EVENT_INTERVAL_MS + 20);
	send_rtp(tx, 12, 9, 40);
	e = event_expect(ev, RTPM_EVENT_OVERRUN, 2000);
	ASSERT_TRUE(e.count >= 1);
	ASSERT_OK(detach(ch, RTPM_DIR_RX));
	event_expect(ev, RTPM_EVENT_DETACH_RX, 2000);
	close(rx);
	close(tx);
	pop_release_all(&(struct chan){ .fd = ch });

	/* A closed file's slots (RECLAIM), a held one taken back (EVICT). */
	other = open_dev(O_NONBLOCK);
	ASSERT_OK(reserve1(other, &idx));
	close(other);
	e = event_expect(ev, RTPM_EVENT_RECLAIM, 2000);
	ASSERT_EQ(e.count, 1);
	ASSERT_EQ(e.pid, getpid());
	other = open_dev(O_NONBLOCK);
	ASSERT_OK(reserve1(other, &idx));
	ASSERT_OK(ioctl(ch, RTPM_IOC_RECLAIM, &rc));
	e = event_expect(ev, RTPM_EVENT_EVICT, 2000);
	ASSERT_EQ(e.count, 1);
	close(other);

	/* A slot held past stuck_ms (module default 2000 ms). */
	ASSERT_OK(reserve1(ch, &idx));
	e = event_expect(ev, RTPM_EVENT_STUCK, 6000);
	ASSERT_EQ(e.count, 1);
	ASSERT_EQ(e.pid, getpid());
	r.index = idx;
	r.len = 0;
	r.flags = 0;
	r.pad = 0;
	ASSERT_OK(ioctl(ch, RTPM_IOC_CANCEL_SLOT, &r));
	close(ev);
}

/* Kernel TX: an independent receiver gets every slot, in order, intact. */
static void test_attach_tx_sends_every_slot(void)
{
	struct sockaddr_storage a;
	struct rtpm_stats st;
	struct chan c = { 0 };
	socklen_t alen;
	uint8_t buf[512];
	int rcv, tx, i, one = 1 << 20;

	chan_setup(&c, 8, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	rcv = udp_bound(AF_INET, &a, &alen);
	setsockopt(rcv, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(c.fd, tx, RTPM_DIR_TX, 0, 0));
	ASSERT_EQ(attached(c.fd), RTPM_ATTACHED_TX);
	/* The channel holds the socket's file: our descriptor may go. */
	close(tx);
	for (i = 0; i < 100; i++) {
		uint32_t index;
		uint8_t *p;
		int k;

		ASSERT_OK(reserve1(c.fd, &index));
		p = slot_pay(&c, index);
		put_rtp(p, 500 + i, 0, 9, false);
		for (k = 12; k < 80 + i; k++)
			p[k] = (uint8_t)(i ^ k);
		ASSERT_OK(push1(c.fd, index, 80 + i));
	}
	for (i = 0; i < 100; i++) {
		struct pollfd p = { .fd = rcv, .events = POLLIN };
		int k;

		ASSERT_EQ(poll(&p, 1, 5000), 1);
		ASSERT_EQ(recv(rcv, buf, sizeof(buf), 0), 80 + i);
		ASSERT_EQ((buf[2] << 8) | buf[3], 500 + i);
		for (k = 12; k < 80 + i; k++)
			ASSERT_EQ(buf[k], (uint8_t)(i ^ k));
	}
	st = WAIT_STAT(c.fd, released, 100);
	ASSERT_EQ(st.tx_sent, 100);
	ASSERT_EQ(st.tx_errors, 0);
	ASSERT_EQ(st.popped_packets, 100);
	/* The user-space consumer role is the attachment's. */
	{
		struct rtpm_slot_ref r;
		int other = open_dev(O_NONBLOCK);

		ASSERT_ERRNO(pop1(other, &r), EPERM);
		close(other);
	}
	ASSERT_OK(detach(c.fd, RTPM_DIR_TX));
	ASSERT_EQ(attached(c.fd), 0);
}

static int64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* One paced run: the receive-time span of @n packets at @pps, in ns. */
static int64_t tx_paced_span(struct chan *c, int n, uint32_t pps)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int64_t first = 0, last = 0;
	int rcv, tx, i, on = 1, big = 1 << 21;

	rcv = udp_bound(AF_INET, &a, &alen);
	setsockopt(rcv, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	ASSERT_OK(setsockopt(rcv, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)));
	tx = udp_connected(&a, alen);
	/* A bucket of 16 packets absorbs a late timer on a busy host. */
	ASSERT_OK(attach(c->fd, tx, RTPM_DIR_TX, pps, 16));
	close(tx);
	ASSERT_OK(ioctl(c->fd, RTPM_IOC_STOP));
	ASSERT_OK(ioctl(c->fd, RTPM_IOC_START));
	for (i = 0; i < n; i++)
		push_rtp(c, i, 2, 100);
	for (i = 0; i < n; i++) {
		char data[256], ctl[256];
		struct iovec iov = { data, sizeof(data) };
		struct msghdr m = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = sizeof(ctl),
		};
		struct pollfd p = { .fd = rcv, .events = POLLIN };
		struct cmsghdr *cm;
		int64_t t = 0;

		ASSERT_EQ(poll(&p, 1, 10000), 1);
		ASSERT_EQ(recvmsg(rcv, &m, 0), 100);
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_TIMESTAMPNS)
				t = ts_ns((struct timespec *)CMSG_DATA(cm));
		ASSERT_TRUE(t != 0);
		if (!i)
			first = t;
		last = t;
	}
	ASSERT_OK(detach(c->fd, RTPM_DIR_TX));
	close(rcv);
	return last - first;
}

/* Milliseconds 200 sleeps of 1 ms take here: about 200 unless starved. */
static int64_t sleep_calibration_ms(void)
{
	struct timespec t0, t1;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 200; i++)
		sleep_ms(1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (ts_ns(&t1) - ts_ns(&t0)) / 1000000;
}

/*
 * Paced TX: n packets at R pps take (n - 1 - (burst - 1)) / R seconds (the
 * first bucketful leaves at once); within 5 %. Never faster, whatever the
 * load: that would be a pacing bug. Slower can also be the machine: the
 * guest shares a noisy host, and when its own 1 ms sleeps run late, the
 * pacing timer does too. So a slow run is tried again, twice, and if all
 * three were slow while the guest is measurably starved the test says so
 * and counts as skipped rather than passing or failing on noise.
 */
static void test_attach_tx_paced(void)
{
	const int n = 600, burst = 16;
	const uint32_t pps = 1000;
	const int64_t want = (int64_t)(n - 1 - (burst - 1)) * 1000000000LL / pps;
	struct chan c = { 0 };
	int64_t calib;
	int attempt;

	chan_setup(&c, 10, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	for (attempt = 1; attempt <= 3; attempt++) {
		int64_t span = tx_paced_span(&c, n, pps);

		printf("# attempt %d: %d packets at %u pps took %" PRId64
		       " us, want %" PRId64 " us +-5%%\n", attempt, n, pps,
		       span / 1000, want / 1000);
		if (span < want * 95 / 100)
			FAIL("paced TX ran faster than %u pps", pps);
		if (span <= want * 105 / 100)
			return;
	}
	calib = sleep_calibration_ms();
	if (calib > 250)
		skip_test("the guest is starved (200 sleeps of 1 ms took %" PRId64
			  " ms): pacing cannot be measured", calib);
	FAIL("paced TX was slower than %u pps -5%% three times (1 ms sleeps are on time: %" PRId64
	     " ms for 200)", pps, calib);
}

/* ------------------------------------------- ABI 2.0: the items of issue 15 */

/* A single number in a file such as memory.peak; -1 if it cannot be read. */
static long long file_value(const char *path)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtoll(buf, NULL, 10);
}

static void set_config(struct rtpm_config *cfg, unsigned int order,
		       unsigned int payload)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ring_order = order;
	cfg->slot_payload = payload;
	cfg->drop_policy = RTPM_DROP_REJECT_NEWEST;
}

/*
 * Item 1: CONFIGURE obeys the per-channel ceiling (max_ring_kib, -E2BIG)
 * and the module-wide one (max_total_kib, -ENOSPC), and the issue's
 * reproducer (ring_order 15, 16 KiB slots: 512 MiB) costs no memory.
 */
static void test_item1_configure_ceiling_and_cheap_checks(void)
{
	long long ring_kib = read_param("max_ring_kib");
	long long total_kib = read_param("max_total_kib");
	struct rtpm_config cfg;
	struct rtpm_info info;
	long long avail0, avail1;
	uint64_t total;
	int fd = open_dev(0);

	if (ring_kib < 0 || total_kib < 0)
		FAIL("module parameters max_ring_kib/max_total_kib missing in "
		     PARAM_DIR);
	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);

	/* The reproducer of the issue: a 512 MiB ring, above the ceiling. */
	avail0 = mem_available_kib();
	set_config(&cfg, RTPM_RING_ORDER_MAX, RTPM_SLOT_PAYLOAD_MAX);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), E2BIG);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), E2BIG);
	avail1 = mem_available_kib();
	printf("# MemAvailable %lld kB before, %lld kB after two refused 512 MiB rings\n",
	       avail0, avail1);
	ASSERT_TRUE(avail1 > avail0 - 32 * 1024);
	get_info(fd, &info);
	ASSERT_EQ(info.config.ring_order, SMALL_ORDER);
	ASSERT_EQ(info.max_ring_bytes, ring_kib * 1024ull);

	/* A lowered per-channel ceiling: 64 KiB. */
	write_param("max_ring_kib", 64);
	get_info(fd, &info);
	ASSERT_EQ(info.max_ring_bytes, 64 * 1024);
	set_config(&cfg, 8, 256);	/* 64 KiB payload + 12 KiB meta */
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), E2BIG);
	set_config(&cfg, 6, 256);	/* 16 KiB payload + 8 KiB meta */
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	get_info(fd, &info);
	ASSERT_EQ(info.config.ring_order, 6);
	write_param("max_ring_kib", ring_kib);

	/*
	 * The module-wide budget: room for 100 KiB more than all rings use
	 * now. A ring growing by more is refused, one growing by less fits.
	 */
	total = all_rings_bytes();
	write_param("max_total_kib", total / 1024 + 100);
	set_config(&cfg, 8, 2048);	/* 512 KiB + 12 KiB meta */
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), ENOSPC);
	get_info(fd, &info);
	ASSERT_EQ(info.config.ring_order, 6);	/* unchanged */
	ASSERT_EQ(all_rings_bytes(), total);	/* nothing reserved */
	set_config(&cfg, 7, 256);	/* grows by 16 KiB */
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	ASSERT_EQ(all_rings_bytes(), total + 16 * 1024);

	/*
	 * The new ring is allocated before the old one is freed, so both
	 * count while CONFIGURE runs: room for exactly one more 40 KiB ring
	 * lets this one be replaced by its like, 1 KiB less does not.
	 */
	total = all_rings_bytes();
	write_param("max_total_kib", total / 1024 + 40);
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	ASSERT_EQ(all_rings_bytes(), total);
	write_param("max_total_kib", total / 1024 + 39);
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), ENOSPC);
	/* Refusals and a shrink give everything back: the same size fits. */
	set_config(&cfg, SMALL_ORDER, SMALL_PAYLOAD);	/* 12 KiB */
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	set_config(&cfg, 7, 256);
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	ASSERT_EQ(all_rings_bytes(), total);
	set_config(&cfg, 7, 512);	/* 72 KiB: above the room */
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), ENOSPC);
	write_param("max_total_kib", total_kib);
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg));
	{
		struct rtpm_stats st;

		/* Refused configurations are no slot misuse. */
		get_stats(fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
		ASSERT_EQ(st.denied, 0);
	}
}

#define CGROUP_ROOT	"/sys/fs/cgroup"

/* A memory cgroup limited to @max bytes, created in @dir; skips if none. */
static void memcg_create(char *dir, size_t size, unsigned long long max)
{
	char path[192], ctl[256] = "";
	ssize_t n;
	int fd;

	if (access(CGROUP_ROOT "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", CGROUP_ROOT, "cgroup2", 0, NULL))
		skip_test("no cgroup2 at " CGROUP_ROOT " and mounting it failed: %s",
			  strerror(errno));
	fd = open(CGROUP_ROOT "/cgroup.controllers", O_RDONLY);
	if (fd < 0)
		skip_test("cgroup.controllers: %s", strerror(errno));
	n = read(fd, ctl, sizeof(ctl) - 1);
	close(fd);
	if (n < 0 || !strstr(ctl, "memory"))
		skip_test("the kernel offers no memory controller (%s)", ctl);
	if (write_text(CGROUP_ROOT "/cgroup.subtree_control", "+memory"))
		skip_test("enabling the memory controller failed: %s",
			  strerror(errno));
	snprintf(dir, size, CGROUP_ROOT "/rtpm-selftest.%d", (int)getpid());
	if (mkdir(dir, 0755) && errno != EEXIST)
		FAIL("mkdir %s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/memory.max", dir);
	snprintf(ctl, sizeof(ctl), "%llu", max);
	if (write_text(path, ctl))
		FAIL("write %s: %s", path, strerror(errno));
}

#define BIG_ORDER	11	/* 2048 x 16 KiB: a 32 MiB ring */

/*
 * Item 1: the ring is charged to the caller's memory cgroup, and a request
 * refused as busy (running, mapped, slots owned) allocates nothing: inside
 * a cgroup limited to 16 MiB, the busy refusals of a 32 MiB ring say EBUSY
 * (an allocation first would say ENOMEM) and memory.peak stays low; on an
 * idle channel the same request fails with ENOMEM, without an OOM kill,
 * and leaves the channel as it was. Outside the cgroup it succeeds.
 */
static void test_item1_configure_charged_and_busy_before_allocating(void)
{
	const unsigned long long limit = 16ull << 20;
	struct rtpm_config big;
	struct rtpm_info info;
	char dir[128];
	pid_t pid;
	int fd = open_dev(0);

	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	set_config(&big, BIG_ORDER, RTPM_SLOT_PAYLOAD_MAX);
	memcg_create(dir, sizeof(dir), limit);

	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		char path[192], me[16];
		long long base, peak;
		uint32_t idx;
		void *m;
		int cfd;

		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		snprintf(me, sizeof(me), "%d", (int)getpid());
		if (write_text(path, me))
			FAIL("joining %s: %s", dir, strerror(errno));
		cfd = open_dev(O_NONBLOCK);
		snprintf(path, sizeof(path), "%s/memory.current", dir);
		base = file_value(path);
		ASSERT_TRUE(base >= 0);

		/* Running. */
		ASSERT_OK(ioctl(cfd, RTPM_IOC_START));
		ASSERT_ERRNO(ioctl(cfd, RTPM_IOC_CONFIGURE, &big), EBUSY);
		ASSERT_OK(ioctl(cfd, RTPM_IOC_STOP));
		/* Mapped. */
		m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, cfd, 0);
		ASSERT_TRUE(m != MAP_FAILED);
		ASSERT_ERRNO(ioctl(cfd, RTPM_IOC_CONFIGURE, &big), EBUSY);
		ASSERT_OK(munmap(m, 4096));
		/* A slot owned (reserved before STOP). */
		ASSERT_OK(ioctl(cfd, RTPM_IOC_START));
		ASSERT_OK(reserve1(cfd, &idx));
		ASSERT_OK(ioctl(cfd, RTPM_IOC_STOP));
		ASSERT_ERRNO(ioctl(cfd, RTPM_IOC_CONFIGURE, &big), EBUSY);
		ASSERT_OK(cancel1(cfd, idx));

		snprintf(path, sizeof(path), "%s/memory.peak", dir);
		peak = file_value(path);
		if (peak >= 0) {
			printf("# memcg: %lld bytes at start, peak %lld after three busy refusals\n",
			       base, peak);
			ASSERT_TRUE(peak < base + (4 << 20));
		}

		/* Idle: the allocation is tried, charged here and fails. */
		ASSERT_ERRNO(ioctl(cfd, RTPM_IOC_CONFIGURE, &big), ENOMEM);
		get_info(cfd, &info);
		ASSERT_EQ(info.config.ring_order, SMALL_ORDER);
		ASSERT_EQ(info.config.slot_payload, SMALL_PAYLOAD);
		snprintf(path, sizeof(path), "%s/memory.events", dir);
		ASSERT_EQ(text_value(path, "oom_kill"), 0);
		/* The channel still works. */
		ASSERT_OK(ioctl(cfd, RTPM_IOC_START));
		ASSERT_OK(reserve1(cfd, &idx));
		ASSERT_OK(push1(cfd, idx, 12));
		_exit(0);
	}
	wait_child_ok(pid);
	if (rmdir(dir))
		FAIL("rmdir %s: %s", dir, strerror(errno));

	/* Outside the small cgroup the same ring is allocated. */
	ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
	ASSERT_OK(ioctl(fd, RTPM_IOC_CONFIGURE, &big));
	get_info(fd, &info);
	ASSERT_EQ(info.config.ring_order, BIG_ORDER);
	ASSERT_TRUE(info.payload_size >= 32ull << 20);
	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
}

/* Every slot operation and CLAIM must fail with @err; returns how many. */
static unsigned int all_slot_ops_fail(int fd, uint32_t next, int err)
{
	static const unsigned long batch_ops[] = {
		RTPM_IOC_RESERVE_BATCH, RTPM_IOC_PUSH_BATCH, RTPM_IOC_POP_BATCH,
		RTPM_IOC_RELEASE_BATCH, RTPM_IOC_CANCEL_BATCH,
	};
	struct rtpm_slot_ref r = { .index = next, .len = 12 };
	unsigned int i, n = 0;
	uint32_t idx, count;

	ASSERT_ERRNO(reserve1(fd, &idx), err);
	n++;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_PUSH_SLOT, &r), err);
	n++;
	ASSERT_ERRNO(pop1(fd, &r), err);
	n++;
	r.index = next;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RELEASE_SLOT, &r), err);
	n++;
	ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CANCEL_SLOT, &r), err);
	n++;
	for (i = 0; i < sizeof(batch_ops) / sizeof(batch_ops[0]); i++) {
		r.index = next;
		r.len = 12;
		count = 1;
		ASSERT_ERRNO(batch(fd, batch_ops[i], &r, &count), err);
		ASSERT_EQ(count, 1);
		n++;
	}
	ASSERT_ERRNO(claim(fd, RTPM_ROLE_PRODUCER), err);
	n++;
	ASSERT_ERRNO(claim(fd, RTPM_ROLE_CONSUMER), err);
	n++;
	return n;
}

/*
 * Item 2: a read-only opener watches (GET_*, poll, read-only mappings) but
 * cannot reserve, push, pop (steal packets), release, cancel or claim:
 * -EBADF, counted in denied, and the ring is untouched.
 */
static void test_item2_readonly_opener_cannot_change_the_ring(void)
{
	struct chan c = { 0 };
	struct rtpm_stats st0, st1;
	struct rtpm_status s0, s1;
	struct rtpm_info info;
	struct pollfd p;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned int refused;
	uint8_t *m;
	int ro;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 77, 12);
	push_rtp(&c, 2, 77, 12);
	ro = open_ro(O_NONBLOCK);
	get_info(ro, &info);
	/* Root's read-only file: no write access, hence no admin rights. */
	ASSERT_EQ(info.file_caps, 0);
	get_stats(ro, &st0);
	get_status(ro, &s0);
	ASSERT_EQ(s0.ready, 2);

	refused = all_slot_ops_fail(ro, next_slot(&c), EBADF);
	{
		struct rtpm_config cfg = {
			.ring_order = 5, .slot_payload = 512,
		};
		uint32_t n;

		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_STOP), EPERM);
		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_START), EPERM);
		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_RESET), EPERM);
		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_CONFIGURE, &cfg), EPERM);
		ASSERT_ERRNO(reclaim(ro, 0, &n), EPERM);
		refused += 5;
	}

	get_stats(ro, &st1);
	get_status(ro, &s1);
	ASSERT_EQ(st1.denied, st0.denied + refused);
	ASSERT_EQ(st1.illegal_ops, st0.illegal_ops);
	ASSERT_EQ(st1.popped_packets, st0.popped_packets);
	ASSERT_EQ(st1.pushed_packets, st0.pushed_packets);
	ASSERT_EQ(s1.ready, 2);
	ASSERT_EQ(s1.producing, 0);
	ASSERT_EQ(s1.consuming, 0);
	ASSERT_EQ(s1.claimed, 0);
	ASSERT_EQ(s1.reserve, s0.reserve);
	ASSERT_EQ(s1.consumer, s0.consumer);
	ASSERT_EQ(s1.state, RTPM_STATE_RUNNING);

	/* It may watch: poll (never writable) and read-only mappings. */
	p.fd = ro;
	p.events = POLLIN | POLLOUT;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLIN);
	m = mmap(NULL, pg, PROT_READ, MAP_SHARED, ro, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_EQ(((struct rtpm_ring_header *)m)->producer, 2);
	ASSERT_OK(munmap(m, pg));
	m = mmap(NULL, c.info.payload_size, PROT_READ, MAP_SHARED, ro,
		 c.info.payload_offset);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_EQ(m[0], 0x80);		/* the first packet's RTP header */
	/* But never write a payload. */
	ASSERT_ERRNO(mprotect(m, pg, PROT_READ | PROT_WRITE), EACCES);
	ASSERT_OK(munmap(m, c.info.payload_size));
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, ro,
			 c.info.payload_offset) == MAP_FAILED &&
		    errno == EACCES);
	ASSERT_OK(close(ro));
	/* The packets are still there for the real consumer. */
	pop_release_all(&c);
	get_stats(c.fd, &st1);
	ASSERT_EQ(st1.popped_packets, 2);
}

/*
 * Item 2: without CAP_NET_ADMIN (dropped with capset in a child, still uid
 * 0 so the node opens), a file cannot CONFIGURE, RESET, RECLAIM, START or
 * STOP (-EPERM, counted in denied), while slot operations work. Claiming
 * the producer role lets it START and STOP its channel, nothing more. The
 * privilege is the opener's: a file opened before the drop keeps it.
 */
static void test_item2_unprivileged_opener_cannot_configure_or_stop(void)
{
	struct chan c = { 0 };
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		struct rtpm_config cfg;
		struct rtpm_slot_ref r;
		struct rtpm_status s;
		struct rtpm_stats st;
		struct rtpm_info info;
		uint32_t idx, n;
		int fd, ro;

		drop_net_admin();
		fd = open_dev(O_NONBLOCK);
		ro = open_ro(O_NONBLOCK);
		get_info(fd, &info);
		ASSERT_EQ(info.file_caps, RTPM_FILE_WRITE);
		get_info(ro, &info);
		ASSERT_EQ(info.file_caps, 0);
		set_config(&cfg, 5, 512);

		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EPERM);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RESET), EPERM);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_STOP), EPERM);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_START), EPERM);
		ASSERT_ERRNO(reclaim(fd, 0, &n), EPERM);
		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_STOP), EPERM);
		ASSERT_ERRNO(ioctl(ro, RTPM_IOC_CONFIGURE, &cfg), EPERM);
		get_status(fd, &s);
		ASSERT_EQ(s.state, RTPM_STATE_RUNNING);

		/* The data path is open to it. */
		ASSERT_OK(reserve1(fd, &idx));
		ASSERT_OK(push1(fd, idx, 12));
		ASSERT_OK(pop1(fd, &r));
		ASSERT_OK(release1(fd, r.index));
		ASSERT_OK(reserve1(fd, &idx));
		ASSERT_OK(cancel1(fd, idx));

		/* The producer role brings START and STOP, not CONFIGURE. */
		ASSERT_OK(claim(fd, RTPM_ROLE_PRODUCER));
		ASSERT_OK(ioctl(fd, RTPM_IOC_STOP));
		get_status(fd, &s);
		ASSERT_EQ(s.state, RTPM_STATE_STOPPED);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_CONFIGURE, &cfg), EPERM);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RESET), EPERM);
		ASSERT_OK(ioctl(fd, RTPM_IOC_START));
		get_status(fd, &s);
		ASSERT_EQ(s.state, RTPM_STATE_RUNNING);
		/* The consumer role does not. */
		ASSERT_OK(claim(fd, RTPM_ROLE_CONSUMER));
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_STOP), EPERM);

		get_stats(fd, &st);
		ASSERT_EQ(st.denied, 10);
		ASSERT_EQ(st.illegal_ops, 0);
		ASSERT_EQ(st.cancelled, 1);

		/* The parent's file, opened with CAP_NET_ADMIN, keeps it. */
		ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
		ASSERT_OK(ioctl(c.fd, RTPM_IOC_RESET));
		get_stats(fd, &st);
		ASSERT_EQ(st.denied, 0);
		_exit(0);
	}
	wait_child_ok(pid);
}

/*
 * Item 2: one producer and one consumer file per channel. A third file
 * cannot claim (-EBUSY, nothing changes), reserve, push or pop (-EPERM,
 * counted in denied), and the holders cannot act in each other's role.
 * Roles end with CLAIM of 0 and with the file, also a killed process's.
 */
static void test_item2_claims_keep_a_third_file_out(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r, refs[2];
	struct rtpm_status s;
	struct rtpm_stats st;
	struct rtpm_info info;
	uint32_t idx, n;
	int prod, cons, third;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	prod = c.fd;
	cons = open_dev(O_NONBLOCK);
	third = open_dev(O_NONBLOCK);
	ASSERT_OK(claim(prod, RTPM_ROLE_PRODUCER));
	ASSERT_OK(claim(cons, RTPM_ROLE_CONSUMER));
	get_status(prod, &s);
	ASSERT_EQ(s.claimed, RTPM_ROLES_ALL);
	get_info(prod, &info);
	ASSERT_EQ(info.file_roles, RTPM_ROLE_PRODUCER);
	get_info(cons, &info);
	ASSERT_EQ(info.file_roles, RTPM_ROLE_CONSUMER);

	ASSERT_ERRNO(claim(third, RTPM_ROLE_PRODUCER), EBUSY);
	ASSERT_ERRNO(claim(third, RTPM_ROLE_CONSUMER), EBUSY);
	ASSERT_ERRNO(claim(third, RTPM_ROLES_ALL), EBUSY);
	ASSERT_ERRNO(claim(cons, RTPM_ROLES_ALL), EBUSY);
	get_info(third, &info);
	ASSERT_EQ(info.file_roles, 0);
	get_info(cons, &info);
	ASSERT_EQ(info.file_roles, RTPM_ROLE_CONSUMER);	/* unchanged */
	ASSERT_OK(claim(prod, RTPM_ROLE_PRODUCER));	/* again: fine */

	push_rtp(&c, 1, 5, 12);
	push_rtp(&c, 2, 5, 12);
	/* The third file cannot produce or steal packets. */
	ASSERT_ERRNO(reserve1(third, &idx), EPERM);
	n = 2;
	ASSERT_ERRNO(batch(third, RTPM_IOC_RESERVE_BATCH, refs, &n), EPERM);
	ASSERT_ERRNO(push1(third, next_slot(&c), 12), EPERM);
	ASSERT_ERRNO(pop1(third, &r), EPERM);
	n = 2;
	ASSERT_ERRNO(batch(third, RTPM_IOC_POP_BATCH, refs, &n), EPERM);
	/* Nor can the holders swap roles. */
	ASSERT_ERRNO(pop1(prod, &r), EPERM);
	ASSERT_ERRNO(reserve1(cons, &idx), EPERM);
	get_stats(prod, &st);
	ASSERT_EQ(st.denied, 7);
	ASSERT_EQ(st.illegal_ops, 0);
	ASSERT_EQ(st.popped_packets, 0);
	get_status(prod, &s);
	ASSERT_EQ(s.ready, 2);
	ASSERT_EQ(s.producing, 0);

	/* The consumer gets every packet. */
	ASSERT_OK(pop1(cons, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 1);
	ASSERT_OK(release1(cons, r.index));

	/* CLAIM of 0 gives a role up; closing the file does too. */
	ASSERT_OK(claim(cons, 0));
	get_status(prod, &s);
	ASSERT_EQ(s.claimed, RTPM_ROLE_PRODUCER);
	ASSERT_OK(pop1(third, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 2);
	ASSERT_OK(release1(third, r.index));
	ASSERT_OK(claim(cons, RTPM_ROLE_CONSUMER));
	ASSERT_ERRNO(claim(prod, RTPM_ROLES_ALL), EBUSY);
	ASSERT_OK(close(cons));
	get_status(prod, &s);
	ASSERT_EQ(s.claimed, RTPM_ROLE_PRODUCER);

	/* A holder killed with SIGKILL gives its roles back on exit. */
	ASSERT_OK(claim(prod, 0));
	{
		int pipefd[2];
		char ch;
		pid_t pid;

		ASSERT_OK(pipe(pipefd));
		pid = fork();
		ASSERT_TRUE(pid >= 0);
		if (!pid) {
			int fd = open_dev(O_NONBLOCK);

			ASSERT_OK(claim(fd, RTPM_ROLES_ALL));
			ASSERT_EQ(write(pipefd[1], "x", 1), 1);
			hang();
		}
		ASSERT_EQ(read(pipefd[0], &ch, 1), 1);
		ASSERT_ERRNO(claim(third, RTPM_ROLE_PRODUCER), EBUSY);
		ASSERT_ERRNO(reserve1(third, &idx), EPERM);
		ASSERT_OK(kill(pid, SIGKILL));
		ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	}
	get_status(prod, &s);
	ASSERT_EQ(s.claimed, 0);
	ASSERT_OK(claim(third, RTPM_ROLES_ALL));
	ASSERT_OK(reserve1(third, &idx));
	ASSERT_OK(push1(third, idx, 12));
	ASSERT_OK(pop1(third, &r));
	ASSERT_OK(release1(third, r.index));
	conservation(prod);
}

/*
 * Item 3: the one-call PUSH_SLOT (implicit reserve of the next free slot)
 * writes a payload before the kernel hands the slot out, so it is the
 * producer-role holder's alone: any other file gets -EPERM (denied) and
 * the slot stays FREE, so two producers cannot share a slot.
 */
static void test_item3_implicit_push_needs_the_producer_role(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_status s;
	struct rtpm_stats st;
	uint32_t next, idx;
	int other;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_OLDEST,
		   O_NONBLOCK);
	other = open_dev(O_NONBLOCK);
	next = next_slot(&c);

	/* Nobody holds the role: nobody may push implicitly. */
	ASSERT_ERRNO(push1(c.fd, next, 12), EPERM);
	ASSERT_ERRNO(push1(other, next, 12), EPERM);
	{
		struct rtpm_slot_ref refs[1] = { { .index = next, .len = 12 } };

		idx = 1;
		ASSERT_ERRNO(batch(c.fd, RTPM_IOC_PUSH_BATCH, refs, &idx),
			     EPERM);
		ASSERT_EQ(idx, 0);	/* entries done: none */
	}
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, 0);
	ASSERT_EQ(s.ready, 0);
	/* Reserving first is still open to every file of an unclaimed ring. */
	ASSERT_OK(reserve1(other, &idx));
	put_rtp(slot_pay(&c, idx), 500, 0, 1, false);
	ASSERT_OK(push1(other, idx, 12));

	/* The holder may; another file may not even RESERVE explicitly. */
	ASSERT_OK(claim(c.fd, RTPM_ROLE_PRODUCER));
	next = next_slot(&c);
	put_rtp(slot_pay(&c, next), 9, 0, 1, false);
	ASSERT_OK(push1(c.fd, next, 12));
	next = next_slot(&c);
	ASSERT_ERRNO(push1(other, next, 12), EPERM);
	ASSERT_ERRNO(reserve1(other, &idx), EPERM);
	get_status(c.fd, &s);
	ASSERT_EQ(s.ready, 2);
	ASSERT_EQ(s.producing, 0);

	/*
	 * Drop-oldest and a full ring: the slot at the reserve index is the
	 * oldest READY one. A one-call PUSH would have written its payload
	 * already, so the kernel never hands that slot out (EAGAIN, no drop);
	 * a RESERVE first may drop it as usual.
	 */
	for (idx = 0; idx < 14; idx++)
		ASSERT_OK(push1(c.fd, next_slot(&c), 12));
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 0);
	ASSERT_ERRNO(push1(c.fd, next_slot(&c), 12), EAGAIN);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.drops, 0);
	ASSERT_EQ(st.overruns, 1);
	ASSERT_EQ(c.desc[next_slot(&c)].rtp_seq, 500);	/* still READY */
	ASSERT_OK(reserve1(c.fd, &idx));		/* drops seq 500 */
	ASSERT_OK(push1(c.fd, idx, 12));
	get_stats(c.fd, &st);
	ASSERT_EQ(st.denied, 5);
	ASSERT_EQ(st.illegal_ops, 0);
	ASSERT_EQ(st.pushed_packets, 17);
	ASSERT_EQ(st.drops, 1);
	ASSERT_OK(pop1(other, &r));
	ASSERT_EQ(c.desc[r.index].rtp_seq, 9);	/* seq 500 was dropped */
	ASSERT_OK(release1(other, r.index));
	conservation(c.fd);
}

/*
 * Item 4: CANCEL returns a PRODUCING slot to FREE without pushing it
 * (counted in cancelled), only for its owner; slots reserved before STOP
 * may still be pushed or cancelled after it, new reservations not.
 */
static void test_item4_cancel_and_push_after_stop(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref refs[16], r;
	struct rtpm_status s;
	struct rtpm_stats st;
	uint32_t n = 4, idx, i;
	int other;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	other = open_dev(O_NONBLOCK);
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 4);

	/* The oldest reservation cancelled: the ring moves past it. */
	ASSERT_OK(cancel1(c.fd, refs[0].index));
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 3);
	ASSERT_EQ(s.free, 13);
	ASSERT_EQ(s.release, 1);
	ASSERT_ERRNO(cancel1(c.fd, refs[0].index), EBADSLT);	/* FREE */
	ASSERT_ERRNO(cancel1(other, refs[1].index), EPERM);	/* not its */
	ASSERT_ERRNO(cancel1(c.fd, 16), EINVAL);
	ASSERT_OK(push1(c.fd, refs[1].index, 12));
	ASSERT_ERRNO(cancel1(c.fd, refs[1].index), EBADSLT);	/* READY */

	/* STOP: what was reserved before may be pushed or cancelled. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	ASSERT_ERRNO(reserve1(c.fd, &idx), EPIPE);
	ASSERT_OK(push1(c.fd, refs[2].index, 20));
	n = 1;
	ASSERT_OK(batch(c.fd, RTPM_IOC_CANCEL_BATCH, &refs[3], &n));
	ASSERT_EQ(n, 1);
	/* A new one-call PUSH on the stopped channel is refused. */
	ASSERT_OK(claim(c.fd, RTPM_ROLE_PRODUCER));
	ASSERT_ERRNO(push1(c.fd, next_slot(&c), 12), EPIPE);
	ASSERT_OK(claim(c.fd, 0));
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 0);
	ASSERT_EQ(s.ready, 2);
	/* Both pushed packets drain from the stopped channel, in order. */
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, refs[1].index);
	ASSERT_OK(release1(c.fd, r.index));
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(r.index, refs[2].index);
	ASSERT_EQ(r.len, 20);
	ASSERT_OK(release1(c.fd, r.index));
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, s.release);

	get_stats(c.fd, &st);
	ASSERT_EQ(st.cancelled, 2);
	ASSERT_EQ(st.pushed_packets, 2);
	ASSERT_EQ(st.illegal_ops, 4);
	ASSERT_EQ(st.denied, 0);
	conservation(c.fd);

	/* Every cancelled slot is usable again: the whole ring reserves. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_START));
	n = 16;
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 16);
	ASSERT_OK(batch(c.fd, RTPM_IOC_CANCEL_BATCH, refs, &n));
	ASSERT_EQ(n, 16);
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, s.release);
	for (i = 0; i < 16; i++)
		push_rtp(&c, i, 3, 12);
	pop_release_all(&c);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.cancelled, 18);
	conservation(c.fd);
}

/*
 * Item 5: a live but hung process holding slots stalls the ring until an
 * administrator's RECLAIM takes back what other files held at least
 * min_held_ns (counted in evicted); the caller's own slots stay. The
 * holder's later PUSH or RELEASE of a taken slot fails. With
 * RTPM_RECLAIM_ROLES the hung consumer's role goes too.
 */
static void test_item5_reclaim_takes_back_a_hung_holders_slots(void)
{
	struct chan c = { 0 };
	struct rtpm_status s;
	struct rtpm_stats st;
	int ready_pipe[2], go_pipe[2];
	uint32_t n, mine, i;
	pid_t pid;
	char ch;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 4, 12);
	push_rtp(&c, 2, 4, 12);
	ASSERT_OK(pipe(ready_pipe));
	ASSERT_OK(pipe(go_pipe));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		struct rtpm_slot_ref refs[3], popped[2];
		struct rtpm_info info;
		int fd = open_dev(O_NONBLOCK);

		ASSERT_OK(claim(fd, RTPM_ROLE_CONSUMER));
		/* Three reservations now, two pops later: two ages. */
		n = 3;
		ASSERT_OK(batch(fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		ASSERT_EQ(n, 3);
		ASSERT_EQ(write(ready_pipe[1], "r", 1), 1);
		ASSERT_EQ(read(go_pipe[0], &ch, 1), 1);
		n = 2;
		ASSERT_OK(batch(fd, RTPM_IOC_POP_BATCH, popped, &n));
		ASSERT_EQ(n, 2);
		ASSERT_EQ(write(ready_pipe[1], "p", 1), 1);
		/* "Hung" until the administrator took the slots back. */
		ASSERT_EQ(read(go_pipe[0], &ch, 1), 1);
		ASSERT_TRUE(push1(fd, refs[0].index, 12) == -1 &&
			    (errno == EBADSLT || errno == EPERM));
		ASSERT_TRUE(cancel1(fd, refs[1].index) == -1 &&
			    (errno == EBADSLT || errno == EPERM));
		ASSERT_TRUE(release1(fd, popped[0].index) == -1 &&
			    (errno == EBADSLT || errno == EPERM));
		get_info(fd, &info);
		ASSERT_EQ(info.file_roles, 0);	/* revoked */
		ASSERT_EQ(write(ready_pipe[1], "d", 1), 1);
		hang();
	}
	ASSERT_EQ(read(ready_pipe[0], &ch, 1), 1);
	sleep_ms(800);
	ASSERT_EQ(write(go_pipe[1], "g", 1), 1);
	ASSERT_EQ(read(ready_pipe[0], &ch, 1), 1);
	ASSERT_OK(reserve1(c.fd, &mine));	/* the caller's own: kept */
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 4);
	ASSERT_EQ(s.consuming, 2);

	/* Only the reservations are 800 ms old; the pops are fresh. */
	ASSERT_OK(reclaim(c.fd, 500000000ull, &n));
	ASSERT_EQ(n, 3);
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 1);
	ASSERT_EQ(s.consuming, 2);
	ASSERT_OK(reclaim(c.fd, 60000000000ull, &n));	/* 1 min: none */
	ASSERT_EQ(n, 0);
	ASSERT_OK(reclaim(c.fd, 0, &n));
	ASSERT_EQ(n, 2);
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 1);
	ASSERT_EQ(s.consuming, 0);
	ASSERT_EQ(s.openers, 2);		/* the holder lives on */
	ASSERT_EQ(s.claimed, RTPM_ROLE_CONSUMER);	/* and holds its role */
	{
		struct rtpm_slot_ref r;
		struct rtpm_reclaim rc = { .flags = RTPM_RECLAIM_ROLES };

		ASSERT_ERRNO(pop1(c.fd, &r), EPERM);	/* not the consumer */
		ASSERT_OK(ioctl(c.fd, RTPM_IOC_RECLAIM, &rc));
		ASSERT_EQ(rc.reclaimed, 0);
		get_status(c.fd, &s);
		ASSERT_EQ(s.claimed, 0);
	}
	get_stats(c.fd, &st);
	ASSERT_EQ(st.evicted, 5);
	ASSERT_EQ(st.reclaimed, 0);

	/* The holder's stale slots are gone for it. */
	ASSERT_EQ(write(go_pipe[1], "g", 1), 1);
	ASSERT_EQ(read(ready_pipe[0], &ch, 1), 1);
	ASSERT_OK(kill(pid, SIGKILL));
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.reclaimed, 0);	/* it owned nothing any more */
	ASSERT_EQ(st.evicted, 5);

	/* The ring is whole: my slot pushes, then the ring fills up. */
	ASSERT_OK(push1(c.fd, mine, 12));
	pop_release_all(&c);
	for (i = 0; i < 16; i++)
		push_rtp(&c, 10 + i, 4, 12);
	pop_release_all(&c);
	get_status(c.fd, &s);
	ASSERT_EQ(s.free, 16);
	ASSERT_EQ(s.reserve, s.release);
	conservation(c.fd);
}

/*
 * Item 6: a slot's owner is the open file itself. Thousands of files
 * opened and closed on the channel never act as the owner of a slot that
 * another file holds, and closing them never reclaims its slots.
 */
static void test_item6_owner_is_the_open_file(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r;
	struct rtpm_status s;
	struct rtpm_stats st;
	uint32_t held;
	int i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 6, 12);
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_OK(reserve1(c.fd, &held));
	for (i = 0; i < 3000; i++) {
		int fd = open_dev(O_NONBLOCK);

		ASSERT_ERRNO(release1(fd, r.index), EPERM);
		ASSERT_ERRNO(push1(fd, held, 12), EPERM);
		ASSERT_OK(close(fd));
	}
	get_status(c.fd, &s);
	ASSERT_EQ(s.consuming, 1);
	ASSERT_EQ(s.producing, 1);
	ASSERT_EQ(s.openers, 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.reclaimed, 0);
	ASSERT_EQ(st.illegal_ops, 6000);
	ASSERT_OK(release1(c.fd, r.index));
	ASSERT_OK(push1(c.fd, held, 12));
	pop_release_all(&c);
}

static volatile sig_atomic_t signals_seen;

static void count_signal(int sig)
{
	(void)sig;
	signals_seen++;
}

/*
 * Item 6: blocking waits return -ERESTARTSYS: a handler installed with
 * SA_RESTART does not end a blocking POP or RESERVE, which completes once
 * there is something to pop or room to reserve (-EINTR would end it).
 */
static void test_item6_interrupted_wait_restarts_with_sa_restart(void)
{
	struct sigaction sa = { .sa_handler = count_signal,
				.sa_flags = SA_RESTART };
	struct chan c = { 0 };
	struct rtpm_slot_ref r, refs[16];
	uint32_t n = 16, idx;
	pid_t sig_pid, pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));

	/* POP: a signal at 100 ms, a packet at 500 ms. */
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		sleep_ms(500);
		push_rtp(&c, 42, 1, 12);	/* same file, own mapping */
		_exit(0);
	}
	sig_pid = signal_me_after(SIGUSR1, 100);
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_EQ(signals_seen, 1);
	ASSERT_EQ(c.desc[r.index].rtp_seq, 42);
	ASSERT_OK(release1(c.fd, r.index));
	wait_child_ok(sig_pid);
	wait_child_ok(pid);

	/* A restarted POP_BATCH still asks for its whole count. */
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		sleep_ms(500);
		push_rtp(&c, 43, 1, 12);
		push_rtp(&c, 44, 1, 12);
		push_rtp(&c, 45, 1, 12);
		_exit(0);
	}
	sig_pid = signal_me_after(SIGUSR1, 100);
	n = 4;
	ASSERT_OK(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n));
	ASSERT_TRUE(n >= 1);	/* a restart with count 0 would pop none */
	ASSERT_EQ(signals_seen, 2);
	wait_child_ok(sig_pid);
	wait_child_ok(pid);
	while (n < 3) {		/* the pushes may have come one by one */
		uint32_t more = 4 - n;

		ASSERT_OK(batch(c.fd, RTPM_IOC_POP_BATCH, refs + n, &more));
		n += more;
	}
	ASSERT_EQ(n, 3);
	ASSERT_EQ(c.desc[refs[2].index].rtp_seq, 45);
	ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, refs, &n));
	n = 16;

	/* RESERVE on a full ring: a signal, then a cancel makes room. */
	ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
	ASSERT_EQ(n, 16);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		sleep_ms(500);
		_exit(cancel1(c.fd, refs[0].index) ? 1 : 0);
	}
	sig_pid = signal_me_after(SIGUSR1, 100);
	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_EQ(signals_seen, 3);
	ASSERT_EQ(idx, refs[0].index);
	wait_child_ok(sig_pid);
	wait_child_ok(pid);
	{
		struct rtpm_stats st;

		get_stats(c.fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
	}
}

/*
 * A path to the channel's device node on a filesystem that allows exec:
 * on a noexec mount the VFS alone would refuse PROT_EXEC and hide whether
 * the module does.
 */
static const char *exec_node(char *buf, size_t size)
{
	static const char *const dirs[] = { "/tmp", "/run", "/dev/shm", "" };
	struct statvfs vfs;
	struct stat st;
	unsigned int i;

	if (!statvfs(dev_path, &vfs) && !(vfs.f_flag & ST_NOEXEC))
		return dev_path;
	ASSERT_OK(stat(dev_path, &st));
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (statvfs(*dirs[i] ? dirs[i] : "/", &vfs) ||
		    (vfs.f_flag & ST_NOEXEC))
			continue;
		snprintf(buf, size, "%s/rtpm-selftest-node.%d", dirs[i],
			 (int)getpid());
		unlink(buf);
		if (!mknod(buf, S_IFCHR | 0600, st.st_rdev))
			return buf;
	}
	skip_test("%s is on a noexec mount and no exec-capable directory takes a device node",
		  dev_path);
}

/* Item 6: packet memory is never executable, not even after mprotect(). */
static void test_item6_mappings_are_never_executable(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct rtpm_info info;
	char buf[128];
	const char *node = exec_node(buf, sizeof(buf));
	int fd = open(node, O_RDWR);
	void *m;

	if (node != dev_path)
		unlink(node);	/* the open file is all we need */
	if (fd < 0)
		FAIL("open %s: %s", node, strerror(errno));
	get_info(fd, &info);
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) ==
		    MAP_FAILED && errno == EPERM);
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd,
			 0) == MAP_FAILED && errno == EPERM);
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_SHARED, fd, info.payload_offset) == MAP_FAILED &&
		    errno == EPERM);
	/* Mapped without exec, exec cannot be added later. */
	m = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(mprotect(m, pg, PROT_READ | PROT_EXEC), EACCES);
	ASSERT_OK(munmap(m, pg));
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 info.payload_offset);
	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(mprotect(m, pg, PROT_READ | PROT_EXEC), EACCES);
	ASSERT_ERRNO(mprotect(m, pg, PROT_EXEC), EACCES);
	/* Still readable and writable as mapped. */
	((volatile uint8_t *)m)[0] = 0x11;
	ASSERT_EQ(((volatile uint8_t *)m)[0], 0x11);
	ASSERT_OK(munmap(m, pg));
	ASSERT_OK(close(fd));
}

/*
 * Item 6: poll() on a stopped channel reports no POLLOUT (a RESERVE would
 * fail with -EPIPE) and POLLHUP for every file opened before the STOP,
 * while POLLIN still reports what is left to drain; a poller blocked for
 * POLLIN is woken by STOP. A file that opened the stopped channel sees no
 * hangup. POLLOUT means a RESERVE by this file would succeed: not while
 * another file holds the producer role.
 */
static void test_item6_poll_after_stop(void)
{
	struct chan c = { 0 };
	struct pollfd p;
	struct rtpm_slot_ref r;
	int late, quiet;
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	quiet = open_dev(O_NONBLOCK);	/* never polls before the STOP */
	p.fd = c.fd;
	p.events = POLLIN | POLLOUT;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLOUT);
	/* Another file's producer role: no RESERVE, hence no POLLOUT. */
	ASSERT_OK(claim(quiet, RTPM_ROLE_PRODUCER));
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT_OK(claim(quiet, 0));
	push_rtp(&c, 1, 8, 12);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLIN | POLLHUP);
	p.fd = quiet;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLIN | POLLHUP);
	p.fd = c.fd;
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_OK(release1(c.fd, r.index));
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLHUP);

	/* Opened while stopped: it waits for START, no hangup. */
	late = open_dev(O_NONBLOCK);
	p.fd = late;
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_START));
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLOUT);
	p.fd = c.fd;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	ASSERT_EQ(p.revents, POLLOUT);

	/* A blocked POLLIN waiter is woken by STOP with POLLHUP. */
	{
		int opened[2];
		char ch;

		ASSERT_OK(pipe(opened));
		pid = fork();
		ASSERT_TRUE(pid >= 0);
		if (!pid) {
			int fd = open_dev(O_NONBLOCK);
			struct pollfd q = { .fd = fd, .events = POLLOUT };

			ASSERT_EQ(poll(&q, 1, 0), 1);	/* running */
			ASSERT_EQ(q.revents, POLLOUT);
			ASSERT_EQ(write(opened[1], "o", 1), 1);
			q.events = POLLIN;
			ASSERT_EQ(poll(&q, 1, 10000), 1);
			ASSERT_EQ(q.revents, POLLHUP);
			_exit(0);
		}
		ASSERT_EQ(read(opened[0], &ch, 1), 1);
	}
	sleep_ms(300);		/* let it block */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	wait_child_ok(pid);
}

/*
 * Item 6 (poll and waits after STOP): a consumer blocked in POP on an empty
 * ring learns of a STOP: the call ends with -EPIPE (end of stream, like
 * read() of a pipe without writers) instead of sleeping until START; so
 * does a POP on a ring drained after the STOP. After START it waits again.
 */
static void test_item6_stop_ends_a_blocked_pop(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r, refs[4];
	uint32_t n = 4;
	pid_t pid;

	int opened[2];
	char ch;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST, 0);
	ASSERT_OK(pipe(opened));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		int fd = open_dev(0);

		ASSERT_EQ(write(opened[1], "o", 1), 1);
		ASSERT_ERRNO(pop1(fd, &r), EPIPE);
		_exit(0);
	}
	ASSERT_EQ(read(opened[0], &ch, 1), 1);
	sleep_ms(300);		/* let it block */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	wait_child_ok(pid);
	/* A batch too, and the same file after START pops again. */
	ASSERT_ERRNO(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n), EPIPE);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_START));
	push_rtp(&c, 3, 1, 12);
	ASSERT_OK(pop1(c.fd, &r));
	ASSERT_OK(release1(c.fd, r.index));
	{
		struct rtpm_stats st;

		get_stats(c.fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
	}
}

/*
 * Item 6: every reserved or padding field is checked on input (-EINVAL)
 * and zero on output: slot_ref pad (PUSH, RELEASE, CANCEL, one slot or
 * batched) and flags (any for PUSH; for RELEASE and CANCEL anything but
 * the RTPM_SLOT_F_* bits POP hands out), config reserved[], claim flags
 * and unknown roles, unknown reclaim flags and its output field; RESERVE
 * returns no stale bytes.
 */
static void test_item6_reserved_fields_must_be_zero(void)
{
	static const unsigned long slot_ops[] = {
		RTPM_IOC_PUSH_SLOT, RTPM_IOC_RELEASE_SLOT, RTPM_IOC_CANCEL_SLOT,
	};
	static const unsigned long batch_ops[] = {
		RTPM_IOC_PUSH_BATCH, RTPM_IOC_RELEASE_BATCH,
		RTPM_IOC_CANCEL_BATCH,
	};
	struct chan c = { 0 };
	struct rtpm_slot_ref r, popped;
	struct rtpm_config cfg;
	struct rtpm_claim cl;
	struct rtpm_reclaim rc;
	struct rtpm_stats st;
	struct rtpm_status s;
	uint32_t prod, n;
	unsigned int i, k, ill = 0;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 2, 12);
	ASSERT_OK(pop1(c.fd, &popped));
	ASSERT_OK(reserve1(c.fd, &prod));

	for (i = 0; i < 3; i++) {
		for (k = 0; k < 2; k++) {
			memset(&r, 0, sizeof(r));
			r.index = slot_ops[i] == RTPM_IOC_RELEASE_SLOT ?
				  popped.index : prod;
			r.len = 12;
			if (k)
				r.pad = 1;
			else if (slot_ops[i] == RTPM_IOC_PUSH_SLOT)
				r.flags = RTPM_SLOT_F_RTP;
			else
				r.flags = ~RTPM_SLOT_F_ALL;
			ASSERT_ERRNO(ioctl(c.fd, slot_ops[i], &r), EINVAL);
			ill++;
			n = 1;
			ASSERT_ERRNO(batch(c.fd, batch_ops[i], &r, &n), EINVAL);
			ASSERT_EQ(n, 0);	/* entries done: none */
			ill++;
		}
	}
	/* Nothing moved: the slots are still owned, and then usable. */
	get_status(c.fd, &s);
	ASSERT_EQ(s.producing, 1);
	ASSERT_EQ(s.consuming, 1);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, ill);
	ASSERT_EQ(st.cancelled, 0);
	for (i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
		ASSERT_EQ(st.reserved[i], 0);
	for (i = 0; i < sizeof(s.reserved) / sizeof(s.reserved[0]); i++)
		ASSERT_EQ(s.reserved[i], 0);
	ASSERT_OK(push1(c.fd, prod, 12));
	ASSERT_OK(release1(c.fd, popped.index));

	/* CLAIM: flags and unknown roles. */
	memset(&cl, 0, sizeof(cl));
	cl.roles = RTPM_ROLE_PRODUCER;
	cl.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CLAIM, &cl), EINVAL);
	cl.flags = 0;
	cl.roles = 1u << 2;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CLAIM, &cl), EINVAL);
	cl.roles = 0x80000000u | RTPM_ROLE_PRODUCER;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CLAIM, &cl), EINVAL);
	get_status(c.fd, &s);
	ASSERT_EQ(s.claimed, 0);

	/* RECLAIM: unknown flags; its output field must come in as zero. */
	memset(&rc, 0, sizeof(rc));
	rc.flags = RTPM_RECLAIM_ROLES << 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RECLAIM, &rc), EINVAL);
	rc.flags = 0x80000000u;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RECLAIM, &rc), EINVAL);
	rc.flags = 0;
	rc.reclaimed = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RECLAIM, &rc), EINVAL);

	/* RESERVE fills every byte of its entries. */
	{
		struct rtpm_slot_ref refs[3];

		memset(refs, 0xff, sizeof(refs));
		n = 3;
		ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		ASSERT_EQ(n, 3);
		for (i = 0; i < n; i++) {
			ASSERT_EQ(refs[i].len, SMALL_PAYLOAD);
			ASSERT_EQ(refs[i].arrival_ns, 0);
			ASSERT_EQ(refs[i].flags, 0);
			ASSERT_EQ(refs[i].pad, 0);
		}
		ASSERT_OK(batch(c.fd, RTPM_IOC_CANCEL_BATCH, refs, &n));
		ASSERT_EQ(n, 3);
	}

	/* CONFIGURE: each reserved word. */
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	while (!pop1(c.fd, &r))
		ASSERT_OK(release1(c.fd, r.index));
	ASSERT_EQ(errno, EPIPE);	/* drained after STOP */
	chan_unmap(&c);
	for (i = 0; i < 4; i++) {
		set_config(&cfg, 5, 512);
		cfg.reserved[i] = 1u << (i * 8);
		ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CONFIGURE, &cfg), EINVAL);
	}
	get_info(c.fd, &c.info);
	ASSERT_EQ(c.info.config.ring_order, SMALL_ORDER);
	set_config(&cfg, 5, 512);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_CONFIGURE, &cfg));
}

/* Item 6: POP hands out the descriptor's flags in struct rtpm_slot_ref. */
static void test_item6_pop_returns_the_descriptor_flags(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r, refs[4];
	uint32_t idx, n;
	uint8_t *p;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	push_rtp(&c, 1, 9, 12);			/* RTP */
	ASSERT_OK(reserve1(c.fd, &idx));	/* RTP with the marker bit */
	put_rtp(slot_pay(&c, idx), 2, 0, 9, true);
	ASSERT_OK(push1(c.fd, idx, 12));
	ASSERT_OK(reserve1(c.fd, &idx));	/* not RTP */
	p = slot_pay(&c, idx);
	memset(p, 0, 12);
	ASSERT_OK(push1(c.fd, idx, 12));
	push_rtp(&c, 3, 9, 12);

	memset(&r, 0xff, sizeof(r));
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_POP_SLOT, &r));
	ASSERT_EQ(r.flags, RTPM_SLOT_F_RTP);
	ASSERT_EQ(r.flags, c.desc[r.index].flags);
	ASSERT_EQ(r.pad, 0);
	ASSERT_OK(release1(c.fd, r.index));

	memset(refs, 0xff, sizeof(refs));
	n = 4;
	ASSERT_OK(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n));
	ASSERT_EQ(n, 3);
	ASSERT_EQ(refs[0].flags, RTPM_SLOT_F_RTP | RTPM_SLOT_F_MARKER);
	ASSERT_EQ(refs[1].flags, RTPM_SLOT_F_MALFORMED);
	ASSERT_EQ(refs[2].flags, RTPM_SLOT_F_RTP);
	for (idx = 0; idx < n; idx++) {
		ASSERT_EQ(refs[idx].flags, c.desc[refs[idx].index].flags);
		ASSERT_EQ(refs[idx].pad, 0);
	}
	/* The popped entries go back to RELEASE as they are, flags and all. */
	ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, refs, &n));
	ASSERT_EQ(n, 3);
}

/*
 * Item 7: the magic moved from 0xb5 (rpmsg's) to 0xe7. A 1.x program's
 * GET_INFO (0xb5, nr 0, 72 bytes) is answered with abi_major 2 and no byte
 * past the 1.0 layout, so it can report the mismatch; its other ioctls,
 * START (RPMSG_DESTROY_EPT_IOCTL) first, get -ENOTTY and change nothing.
 */
static void test_item7_abi1_get_info_reports_version_2_and_other_v1_ioctls_get_enotty(void)
{
	const unsigned long v1_get_info = _IOC(_IOC_READ, 0xb5, 0, 72);
	const unsigned long v1_refused[] = {
		_IO(0xb5, 0x02),		/* 1.x START */
		_IO(0xb5, 0x03),		/* 1.x STOP */
		_IO(0xb5, 0x04),		/* 1.x RESET */
		_IOW(0xb5, 0x01, struct rtpm_config),	/* CONFIGURE */
		_IOC(_IOC_WRITE, 0xb5, 0x01, 16),	/* 1.x CONFIGURE */
		_IOC(_IOC_READ, 0xb5, 0x05, 112),	/* 1.x GET_STATS */
		_IOC(_IOC_WRITE, 0xb5, 0x10, 16),	/* 1.x PUSH_SLOT */
		_IOC(_IOC_READ, 0xb5, 0x11, 16),	/* 1.x POP_SLOT */
		_IOWR(0xb5, 0x21, struct rtpm_batch),	/* 1.x PUSH_BATCH */
		_IOR(0xb5, 0x00, struct rtpm_info),	/* 2.0 size, 1.x magic */
		_IOC(_IOC_WRITE, 0xb5, 0x00, 72),	/* wrong direction */
	};
	struct rtpm_info now;
	struct rtpm_status s;
	uint8_t buf[160];
	unsigned int i;
	int fd = open_dev(O_NONBLOCK);
	int ro = open_ro(0);

	ASSERT_EQ(RTPM_IOC_MAGIC, 0xe7);
	ASSERT_EQ(_IOC_TYPE(RTPM_IOC_START), 0xe7);
	ASSERT_EQ(RTPM_IOC_GET_INFO_V1, v1_get_info);
	configure(fd, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	get_info(fd, &now);

	memset(buf, 0xa5, sizeof(buf));
	ASSERT_OK(ioctl(ro, v1_get_info, buf));	/* read-only is enough */
	ASSERT_EQ(((struct rtpm_info *)buf)->abi_major, 2);
	ASSERT_EQ(((struct rtpm_info *)buf)->abi_minor, RTPM_ABI_MINOR);
	ASSERT_EQ(((struct rtpm_info *)buf)->channel, now.channel);
	ASSERT_EQ(((struct rtpm_info *)buf)->config.ring_order, SMALL_ORDER);
	for (i = 72; i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			FAIL("1.x GET_INFO wrote byte %u", i);

	/* Stopped: a 1.x START must not start it. */
	for (i = 0; i < sizeof(v1_refused) / sizeof(v1_refused[0]); i++)
		ASSERT_ERRNO(ioctl(fd, v1_refused[i], buf), ENOTTY);
	get_status(fd, &s);
	ASSERT_EQ(s.state, RTPM_STATE_STOPPED);
	/* Running: a 1.x STOP must not stop it. */
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));
	for (i = 0; i < sizeof(v1_refused) / sizeof(v1_refused[0]); i++)
		ASSERT_ERRNO(ioctl(fd, v1_refused[i], buf), ENOTTY);
	get_status(fd, &s);
	ASSERT_EQ(s.state, RTPM_STATE_RUNNING);
	get_info(fd, &now);
	ASSERT_EQ(now.config.ring_order, SMALL_ORDER);
	/* The rest of rpmsg's numbers are no rtp_mgr ioctls either. */
	ASSERT_ERRNO(ioctl(fd, _IOW(0xb5, 0x1, char[40]), buf), ENOTTY);
	ASSERT_ERRNO(ioctl(fd, _IO(0xb5, 0x3), buf), ENOTTY);
	{
		struct rtpm_stats st;

		get_stats(fd, &st);
		ASSERT_EQ(st.illegal_ops, 0);
		ASSERT_EQ(st.denied, 0);
	}
}

/*
 * denied counts operations refused for a missing role, write access or
 * capability; illegal_ops counts misuse (bad index, length, state, another
 * file's slot, bad flags); flow control (EAGAIN, EPIPE) counts in neither.
 */
static void test_denied_and_illegal_are_counted(void)
{
	struct chan c = { 0 };
	struct rtpm_slot_ref r, refs[2];
	struct rtpm_batch b = { 0 };
	struct rtpm_stats st;
	char buf[4096];
	uint32_t idx, n;
	int ro, cons, third;
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	ro = open_ro(O_NONBLOCK);
	cons = open_dev(O_NONBLOCK);
	third = open_dev(O_NONBLOCK);

	/* denied: no write access (4), another file's role (3). */
	ASSERT_ERRNO(reserve1(ro, &idx), EBADF);
	ASSERT_ERRNO(pop1(ro, &r), EBADF);
	ASSERT_ERRNO(claim(ro, RTPM_ROLE_CONSUMER), EBADF);
	n = 1;
	ASSERT_ERRNO(batch(ro, RTPM_IOC_RELEASE_BATCH, refs, &n), EBADF);
	ASSERT_OK(claim(c.fd, RTPM_ROLE_PRODUCER));
	ASSERT_OK(claim(cons, RTPM_ROLE_CONSUMER));
	ASSERT_ERRNO(reserve1(third, &idx), EPERM);
	ASSERT_ERRNO(push1(third, next_slot(&c), 12), EPERM);
	ASSERT_ERRNO(pop1(third, &r), EPERM);
	/* denied: no CAP_NET_ADMIN (3). */
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		int fd;

		drop_net_admin();
		fd = open_dev(O_NONBLOCK);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_RESET), EPERM);
		ASSERT_ERRNO(ioctl(fd, RTPM_IOC_STOP), EPERM);
		ASSERT_ERRNO(reclaim(fd, 0, NULL), EPERM);
		_exit(0);
	}
	wait_child_ok(pid);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.denied, 10);
	ASSERT_EQ(st.illegal_ops, 0);

	/* illegal: bad index, length, state, another's slot, flags. */
	ASSERT_OK(reserve1(c.fd, &idx));
	ASSERT_ERRNO(push1(c.fd, 99, 12), EINVAL);
	ASSERT_ERRNO(push1(c.fd, idx, 0), EINVAL);
	ASSERT_ERRNO(release1(c.fd, idx), EBADSLT);
	ASSERT_OK(push1(c.fd, idx, 12));
	ASSERT_OK(pop1(cons, &r));
	ASSERT_ERRNO(release1(c.fd, r.index), EPERM);	/* cons's slot */
	b.slots = (uintptr_t)refs;
	b.count = 1;
	b.flags = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_RESERVE_BATCH, &b), EINVAL);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, 5);
	ASSERT_EQ(st.denied, 10);

	/* Flow control: neither. */
	ASSERT_OK(release1(cons, r.index));
	ASSERT_ERRNO(pop1(cons, &r), EAGAIN);
	ASSERT_OK(ioctl(c.fd, RTPM_IOC_STOP));
	ASSERT_ERRNO(reserve1(c.fd, &idx), EPIPE);
	ASSERT_ERRNO(push1(c.fd, next_slot(&c), 12), EPIPE);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops, 5);
	ASSERT_EQ(st.denied, 10);

	/* sysfs reports the same counters. */
	read_sysfs("stats", buf, sizeof(buf));
	ASSERT_EQ(sysfs_value(buf, "denied"), 10);
	ASSERT_EQ(sysfs_value(buf, "illegal_ops"), 5);
}

/*
 * Concurrent producer and consumer processes, blocking batches. Every
 * payload carries its packet number; the consumer checks that it sees
 * every number exactly once and in order, and so does the kernel's RTP
 * tracker (the 16-bit RTP seq wraps several times).
 */
#define STRESS_MAGIC	0x52545053u

static void stress_producer(unsigned long total, bool per_slot)
{
	struct chan c = { .fd = open_dev(0) };
	struct rtpm_slot_ref refs[32];
	uint64_t seq = 0;

	/* Roles under load; the one-call PUSH needs this one anyway. */
	ASSERT_OK(claim(c.fd, RTPM_ROLE_PRODUCER));
	chan_map(&c);
	while (seq < total) {
		uint32_t n = total - seq < 32 ? total - seq : 32, j;

		if (per_slot) {
			/*
			 * Seed-style one-call push: wait for room, write the
			 * next slot, PUSH it (implicit reserve). Only this
			 * process reserves, so room seen stays room.
			 */
			uint32_t next;

			while (load_acquire(&c.hdr->reserve) -
			       load_acquire(&c.hdr->release) ==
			       c.info.slot_count) {
				struct pollfd p = { c.fd, POLLOUT, 0 };

				poll(&p, 1, 1000);
			}
			next = load_acquire(&c.hdr->reserve) &
			       (c.info.slot_count - 1);
			refs[0].index = next;
			n = 1;
		} else {
			ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs,
					&n));
		}
		for (j = 0; j < n; j++, seq++) {
			uint8_t *p = slot_pay(&c, refs[j].index);
			uint32_t magic = STRESS_MAGIC;

			put_rtp(p, (uint16_t)seq, (uint32_t)seq * 90,
				0x5eed, false);
			memcpy(p + 12, &magic, 4);
			memcpy(p + 16, &seq, 8);
			/* The last byte lies behind the packet number. */
			refs[j].len = 25 + seq % 200;
			p[refs[j].len - 1] = (uint8_t)seq;
			refs[j].arrival_ns = 0;
		}
		if (per_slot)
			ASSERT_OK(push1(c.fd, refs[0].index, refs[0].len));
		else
			ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, refs, &n));
	}
	_exit(0);
}

static void stress_consumer(unsigned long total, bool per_slot)
{
	struct chan c = { .fd = open_dev(0) };
	struct rtpm_slot_ref refs[32];
	uint64_t expect = 0;

	ASSERT_OK(claim(c.fd, RTPM_ROLE_CONSUMER));
	chan_map(&c);
	while (expect < total) {
		uint32_t n = 32, j;

		if (per_slot) {
			n = 1;
			ASSERT_OK(pop1(c.fd, &refs[0]));
		} else {
			ASSERT_OK(batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n));
		}
		for (j = 0; j < n; j++, expect++) {
			const uint8_t *p = slot_pay(&c, refs[j].index);
			uint32_t magic;
			uint64_t got;

			memcpy(&magic, p + 12, 4);
			memcpy(&got, p + 16, 8);
			if (magic != STRESS_MAGIC || got != expect)
				FAIL("slot %u: packet %" PRIu64 ", expected %"
				     PRIu64, refs[j].index, got, expect);
			ASSERT_EQ(refs[j].len, 25 + got % 200);
			ASSERT_EQ(p[refs[j].len - 1], (uint8_t)got);
			ASSERT_EQ(c.desc[refs[j].index].rtp_seq,
				  (uint16_t)got);
		}
		if (per_slot)
			ASSERT_OK(release1(c.fd, refs[0].index));
		else
			ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, refs,
					&n));
	}
	_exit(0);
}

/* Wait for both; if one fails, kill the other instead of letting it block. */
static void wait_pair(pid_t a, pid_t b)
{
	bool bad = false;
	int left = 2, status;

	while (left) {
		pid_t pid = wait(&status);

		if (pid < 0)
			FAIL("wait: %s", strerror(errno));
		if (pid != a && pid != b)
			continue;
		left--;
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("# child %d failed (status 0x%x)\n", (int)pid,
			       status);
			bad = true;
			kill(a, SIGKILL);
			kill(b, SIGKILL);
		}
	}
	if (bad)
		FAIL("stress child failed");
}

static void run_stress(unsigned long total, bool per_slot)
{
	struct timespec t0, t1;
	struct rtpm_stats st;
	struct rtpm_status s;
	pid_t prod, cons;
	double secs;
	int fd = open_dev(0);

	configure(fd, 8, 512, RTPM_DROP_REJECT_NEWEST);
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cons = fork();
	ASSERT_TRUE(cons >= 0);
	if (!cons)
		stress_consumer(total, per_slot);
	prod = fork();
	ASSERT_TRUE(prod >= 0);
	if (!prod)
		stress_producer(total, per_slot);
	wait_pair(prod, cons);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# stress %s: %lu packets in %.2f s (%.0f pkt/s)\n",
	       per_slot ? "per-slot" : "batch", total, secs, total / secs);

	get_stats(fd, &st);
	get_status(fd, &s);
	ASSERT_EQ(st.pushed_packets, total);
	ASSERT_EQ(st.popped_packets, total);
	ASSERT_EQ(st.released, total);
	ASSERT_EQ(st.drops, 0);
	ASSERT_EQ(st.rtp_lost, 0);
	ASSERT_EQ(st.rtp_reordered, 0);
	ASSERT_EQ(st.rtp_duplicates, 0);
	ASSERT_EQ(st.malformed, 0);
	ASSERT_EQ(st.reclaimed, 0);
	ASSERT_EQ(st.illegal_ops, 0);
	ASSERT_EQ(st.denied, 0);
	ASSERT_EQ(s.claimed, 0);	/* the roles ended with their files */
	ASSERT_EQ(s.free, 256);
	ASSERT_EQ(s.openers, 1);
	ASSERT_EQ(s.mappings, 0);
}

/* ------------------------------------------------------------- capture */

static int start_capture(int fd, uint32_t queue_len, uint32_t snaplen,
			 uint32_t flags)
{
	struct rtpm_capture req = {
		.queue_len = queue_len, .snaplen = snaplen, .flags = flags,
	};

	return ioctl(fd, RTPM_IOC_CAPTURE, &req);
}

static size_t record_size(uint32_t caplen)
{
	return (sizeof(struct rtpm_capture_record) + caplen + 7) & ~(size_t)7;
}

/*
 * Check the records in @buf (@n bytes) against the slots @index[0..count)
 * of @c: the same bytes and arrival times, in order. Returns the records.
 */
static unsigned int check_records(struct chan *c, const uint8_t *buf,
				  size_t n, const uint32_t *index,
				  unsigned int count, uint32_t snaplen)
{
	unsigned int k = 0;
	size_t off = 0;

	while (off < n) {
		const struct rtpm_capture_record *rec = (const void *)(buf + off);
		const struct rtpm_slot_desc *d;

		ASSERT_TRUE(k < count);
		d = &c->desc[index[k]];
		ASSERT_EQ(rec->len, d->len);
		ASSERT_EQ(rec->caplen, d->len < snaplen ? d->len : snaplen);
		ASSERT_EQ(rec->arrival_ns, d->arrival_ns);
		ASSERT_EQ(rec->flags, d->flags);
		ASSERT_TRUE(!memcmp(rec + 1, slot_pay(c, index[k]),
				    rec->caplen));
		/* The padding is zero: read() copies it. */
		for (size_t b = sizeof(*rec) + rec->caplen;
		     b < record_size(rec->caplen); b++)
			ASSERT_EQ(buf[off + b], 0);
		off += record_size(rec->caplen);
		k++;
	}
	ASSERT_EQ(off, n);
	return k;
}

/*
 * CAPTURE copies every pushed packet, and the consumer still gets all of
 * them: pops, counters and READY slots are as without the capture. The
 * capture file is read-only, close-on-exec, and outlives the channel file
 * it came from; a read-only channel file may not start one.
 */
static void test_capture_copies_without_taking(void)
{
	struct rtpm_capture req = {
		.queue_len = 8, .flags = RTPM_CAPTURE_F_NONBLOCK,
	};
	struct pollfd p = { .events = POLLIN };
	struct rtpm_stats st0, st;
	struct rtpm_slot_ref r;
	struct chan c = { 0 };
	uint32_t index[3];
	uint8_t buf[4096];
	int ro, w2, cap, i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	get_stats(c.fd, &st0);
	ro = open_ro(0);
	ASSERT_ERRNO(start_capture(ro, 0, 0, 0), EBADF);
	ASSERT_OK(close(ro));
	get_stats(c.fd, &st);
	ASSERT_EQ(st.denied - st0.denied, 1);

	w2 = open_dev(0);
	cap = ioctl(w2, RTPM_IOC_CAPTURE, &req);
	ASSERT_TRUE(cap >= 0);
	/* The defaults resolved are written back. */
	ASSERT_EQ(req.queue_len, 8);
	ASSERT_EQ(req.snaplen, SMALL_PAYLOAD);
	ASSERT_TRUE(fcntl(cap, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(fcntl(cap, F_GETFL) & (O_ACCMODE | O_NONBLOCK),
		  O_RDONLY | O_NONBLOCK);
	ASSERT_ERRNO(write(cap, "x", 1), EBADF);
	ASSERT_ERRNO(lseek(cap, 0, SEEK_SET), ESPIPE);
	ASSERT_ERRNO(read(cap, buf, sizeof(buf)), EAGAIN);
	ASSERT_OK(close(w2));
	get_stats(c.fd, &st0);

	for (i = 0; i < 3; i++)
		index[i] = push_rtp(&c, 10 + i, 5, 100 + 50 * i);
	p.fd = cap;
	ASSERT_EQ(poll(&p, 1, 0), 1);
	/* A fault loses nothing: the records stay queued. */
	ASSERT_ERRNO(syscall(SYS_read, cap, (void *)8, sizeof(buf)), EFAULT);
	{
		ssize_t n = read(cap, buf, sizeof(buf));

		ASSERT_EQ(n, (long long)(record_size(100) + record_size(150) +
					 record_size(200)));
		ASSERT_EQ(check_records(&c, buf, n, index, 3, SMALL_PAYLOAD),
			  3);
	}
	ASSERT_EQ(poll(&p, 1, 0), 0);

	/* The consumer's view did not change. */
	for (i = 0; i < 3; i++) {
		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(r.index, index[i]);
		ASSERT_OK(release1(c.fd, r.index));
	}
	get_stats(c.fd, &st);
	ASSERT_EQ(st.pushed_packets - st0.pushed_packets, 3);
	ASSERT_EQ(st.popped_packets - st0.popped_packets, 3);
	ASSERT_EQ(st.illegal_ops, st0.illegal_ops);
	ASSERT_EQ(st.drops, st0.drops);
	conservation(c.fd);
	ASSERT_OK(close(cap));
}

/*
 * A reader that falls behind loses its copies, counted in the next record,
 * never the channel's packets; snaplen cuts the copy, not the packet; a
 * buffer too small for the next record gets EINVAL and loses nothing.
 */
static void test_capture_queue_full_and_snaplen(void)
{
	const size_t rec16 = record_size(16);
	const struct rtpm_capture_record *rec;
	struct rtpm_slot_ref r;
	struct chan c = { 0 };
	struct rtpm_stats st;
	uint32_t index[6];
	uint8_t buf[1024];
	int cap, i;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	cap = start_capture(c.fd, 2, 16, RTPM_CAPTURE_F_NONBLOCK);
	ASSERT_TRUE(cap >= 0);
	/* Packet 20's bytes after its RTP header are not zero (see below). */
	ASSERT_OK(reserve1(c.fd, &index[0]));
	memset(slot_pay(&c, index[0]), 0xa5, 100);
	put_rtp(slot_pay(&c, index[0]), 20, 20 * 160u, 6, false);
	ASSERT_OK(push1(c.fd, index[0], 100));
	for (i = 1; i < 5; i++)
		index[i] = push_rtp(&c, 20 + i, 6, 100);

	ASSERT_ERRNO(read(cap, buf, sizeof(*rec) - 1), EINVAL);
	ASSERT_ERRNO(read(cap, buf, rec16 - 1), EINVAL);
	ASSERT_EQ(read(cap, buf, rec16), (long long)rec16);
	ASSERT_EQ(check_records(&c, buf, rec16, &index[0], 1, 16), 1);
	ASSERT_EQ(read(cap, buf, sizeof(buf)), (long long)rec16);
	ASSERT_EQ(check_records(&c, buf, rec16, &index[1], 1, 16), 1);
	rec = (const void *)buf;
	ASSERT_EQ(rec->missed, 0);
	ASSERT_ERRNO(read(cap, buf, sizeof(buf)), EAGAIN);

	/* Packets 22..24 found the queue full; the next record says so. */
	index[5] = push_rtp(&c, 25, 6, 12);
	ASSERT_EQ(read(cap, buf, sizeof(buf)), (long long)record_size(12));
	ASSERT_EQ(rec->missed, 3);
	ASSERT_EQ(rec->len, 12);
	ASSERT_EQ(check_records(&c, buf, record_size(12), &index[5], 1, 16),
		  1);

	/*
	 * A record's padding is zero, even where a longer packet lay in the
	 * same place of the queue before: with a queue of 2, packet 25 (12
	 * bytes, 4 of padding) is where packet 20 (cut to 16 bytes, 0xa5
	 * after its header) was.
	 */
	{
		const uint8_t *pad = (const uint8_t *)(rec + 1) + 12;

		ASSERT_TRUE(!pad[0] && !pad[1] && !pad[2] && !pad[3]);
	}

	/* Every packet is still the consumer's. */
	for (i = 0; i < 6; i++) {
		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(r.index, index[i]);
		ASSERT_OK(release1(c.fd, r.index));
	}
	get_stats(c.fd, &st);
	ASSERT_EQ(st.drops, 0);
	conservation(c.fd);
}

/* Bad requests: the right errno, counted; one capture per channel. */
static void test_capture_errors_and_lifetime(void)
{
	struct rtpm_capture bad;
	struct rtpm_stats st0, st;
	struct chan c = { 0 };
	int cap, cap2, w2;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	get_stats(c.fd, &st0);
	ASSERT_ERRNO(start_capture(c.fd, 0, 0, ~RTPM_CAPTURE_F_ALL), EINVAL);
	ASSERT_ERRNO(start_capture(c.fd, 0, RTPM_SLOT_PAYLOAD_MAX + 1, 0),
		     EINVAL);
	ASSERT_ERRNO(start_capture(c.fd, RTPM_CAPTURE_QUEUE_MAX + 1, 0, 0),
		     EINVAL);
	/* 65536 records of 16 KiB: above RTPM_CAPTURE_BYTES_MAX. */
	ASSERT_ERRNO(start_capture(c.fd, RTPM_CAPTURE_QUEUE_MAX,
				   RTPM_SLOT_PAYLOAD_MAX, 0), EINVAL);
	memset(&bad, 0, sizeof(bad));
	bad.reserved[4] = 1;
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CAPTURE, &bad), EINVAL);
	ASSERT_ERRNO(ioctl(c.fd, RTPM_IOC_CAPTURE, (void *)8), EFAULT);
	get_stats(c.fd, &st);
	ASSERT_EQ(st.illegal_ops - st0.illegal_ops, 6);

	cap = start_capture(c.fd, 0, 0, 0);
	ASSERT_TRUE(cap >= 0);
	w2 = open_dev(0);
	ASSERT_ERRNO(start_capture(w2, 0, 0, 0), EBUSY);
	ASSERT_OK(close(cap));
	cap2 = start_capture(w2, 0, 0, 0);
	ASSERT_TRUE(cap2 >= 0);

	/* A capture keeps the module, as an open channel does. */
	ASSERT_OK(close(w2));
	chan_unmap(&c);
	ASSERT_OK(close(c.fd));
	errno = 0;
	ASSERT_EQ(syscall(SYS_delete_module, "rtp_mgr", O_NONBLOCK), -1);
	ASSERT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);
	ASSERT_OK(close(cap2));
}

/*
 * A blocking poll() and a blocking read() sleep until a packet is pushed,
 * from another process.
 */
static void test_capture_blocking_read(void)
{
	struct pollfd p = { .events = POLLIN };
	struct chan c = { 0 };
	uint32_t index[2] = { 0, 1 };
	uint8_t buf[1024];
	int cap, status, k;
	ssize_t n;
	pid_t pid;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	cap = start_capture(c.fd, 0, 0, 0);
	ASSERT_TRUE(cap >= 0);
	p.fd = cap;
	for (k = 0; k < 2; k++) {
		pid = fork();
		ASSERT_TRUE(pid >= 0);
		if (!pid) {
			sleep_ms(200);
			push_rtp(&c, 30 + k, 7, 64);
			_exit(0);
		}
		if (k == 0)
			ASSERT_EQ(poll(&p, 1, 10000), 1);
		n = read(cap, buf, sizeof(buf));
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
		ASSERT_EQ(n, (long long)record_size(64));
		ASSERT_EQ(check_records(&c, buf, n, &index[k], 1,
					SMALL_PAYLOAD), 1);
	}
	ASSERT_OK(close(cap));
}

/* What an attached socket receives in softirq is captured the same way. */
static void test_capture_attached_rx(void)
{
	const struct rtpm_capture_record *rec;
	struct sockaddr_storage a;
	struct rtpm_slot_ref r;
	struct chan c = { 0 };
	uint8_t buf[8192];
	size_t off = 0;
	socklen_t alen;
	int rx, tx, cap, i;
	ssize_t n = 0;

	chan_setup(&c, SMALL_ORDER, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST,
		   O_NONBLOCK);
	rx = udp_bound(AF_INET, &a, &alen);
	tx = udp_connected(&a, alen);
	ASSERT_OK(attach(c.fd, rx, RTPM_DIR_RX, 0, 0));
	cap = start_capture(c.fd, 0, 0, RTPM_CAPTURE_F_NONBLOCK);
	ASSERT_TRUE(cap >= 0);
	for (i = 0; i < 8; i++)
		send_rtp(tx, 40 + i, 8, 60 + i);
	WAIT_STAT(c.fd, pushed_packets, 8);
	while (off < record_size(60) * 8) {
		n = read(cap, buf + off, sizeof(buf) - off);
		ASSERT_TRUE(n > 0);
		off += n;
	}
	for (i = 0, n = 0; i < 8; i++) {
		rec = (const void *)(buf + n);
		ASSERT_EQ(rec->len, 60 + i);
		ASSERT_EQ(((const uint8_t *)(rec + 1))[3], 40 + i);
		ASSERT_OK(pop1(c.fd, &r));
		ASSERT_EQ(r.arrival_ns, rec->arrival_ns);
		ASSERT_TRUE(!memcmp(rec + 1, slot_pay(&c, r.index), r.len));
		ASSERT_OK(release1(c.fd, r.index));
		n += record_size(rec->caplen);
	}
	ASSERT_EQ((size_t)n, off);
	ASSERT_OK(close(cap));
	ASSERT_OK(detach(c.fd, RTPM_DIR_RX));
}

static void test_stress_batch(void)
{
	run_stress(stress_packets, false);
}

static void test_stress_per_slot(void)
{
	run_stress(stress_packets / 10, true);
}

/*
 * Two producers and two consumers, each with its own open file, plus a
 * rogue producer that pushes a while, then reserves slots and hangs: the
 * ring stalls behind its PRODUCING slots until it is killed with SIGKILL,
 * and the reclaim must unblock everyone. Producers push each batch in
 * reverse order and consumers release in reverse order, so the ring
 * indices only advance over finished slots. Every packet of the two
 * regular producers must be popped exactly once, and each consumer must
 * see every producer's packets in order.
 */
struct mpmc_shared {
	uint64_t consumed;	/* packets of producers 0 and 1 popped */
	uint32_t rogue_held;	/* slots the rogue holds when it hangs */
	uint32_t rogue_dead;
	uint8_t seen[];		/* [producer * per + seq] */
};

#define MPMC_ROGUE	2
#define MPMC_ROGUE_PACKETS	1000

static void mpmc_producer(struct mpmc_shared *sh, uint32_t id,
			  uint64_t count)
{
	struct chan c = { .fd = open_dev(0) };
	struct rtpm_slot_ref refs[8], rev[8];
	uint64_t seq = 0;

	chan_map(&c);
	while (seq < count) {
		uint32_t n = count - seq < 8 ? count - seq : 8, j;

		ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		for (j = 0; j < n; j++, seq++) {
			uint8_t *p = slot_pay(&c, refs[j].index);

			p[0] = 0;	/* not RTP: the producers share a channel */
			memcpy(p + 4, &id, 4);
			memcpy(p + 8, &seq, 8);
			refs[j].len = 16 + seq % 64;
			refs[j].arrival_ns = 0;
			rev[n - 1 - j] = refs[j];
		}
		ASSERT_OK(batch(c.fd, RTPM_IOC_PUSH_BATCH, rev, &n));
	}
	if (id == MPMC_ROGUE) {
		uint32_t n = 8;

		ASSERT_OK(batch(c.fd, RTPM_IOC_RESERVE_BATCH, refs, &n));
		__atomic_store_n(&sh->rogue_held, n, __ATOMIC_RELEASE);
		hang();
	}
	_exit(0);
}

static void mpmc_consumer(struct mpmc_shared *sh, uint64_t per)
{
	struct chan c = { .fd = open_dev(O_NONBLOCK) };
	struct rtpm_slot_ref refs[16], rev[16];
	uint64_t last[3] = { 0, 0, 0 };
	bool any[3] = { false, false, false };

	chan_map(&c);
	for (;;) {
		uint32_t n = 16, j;

		if (batch(c.fd, RTPM_IOC_POP_BATCH, refs, &n)) {
			struct pollfd p = { c.fd, POLLIN, 0 };

			ASSERT_EQ(errno, EAGAIN);
			if (__atomic_load_n(&sh->rogue_dead, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&sh->consumed, __ATOMIC_ACQUIRE) ==
			    2 * per)
				_exit(0);
			poll(&p, 1, 50);
			continue;
		}
		for (j = 0; j < n; j++) {
			const uint8_t *p = slot_pay(&c, refs[j].index);
			uint32_t id;
			uint64_t seq;

			memcpy(&id, p + 4, 4);
			memcpy(&seq, p + 8, 8);
			if (id > MPMC_ROGUE)
				FAIL("slot %u: producer id %u", refs[j].index, id);
			ASSERT_EQ(refs[j].len, 16 + seq % 64);
			if (any[id] && seq <= last[id])
				FAIL("producer %u: packet %" PRIu64 " after %"
				     PRIu64, id, seq, last[id]);
			any[id] = true;
			last[id] = seq;
			if (id != MPMC_ROGUE) {
				if (seq >= per ||
				    __atomic_exchange_n(&sh->seen[id * per + seq],
							1, __ATOMIC_RELAXED))
					FAIL("producer %u: packet %" PRIu64
					     " popped twice", id, seq);
				__atomic_add_fetch(&sh->consumed, 1,
						   __ATOMIC_RELEASE);
			}
			rev[n - 1 - j] = refs[j];
		}
		ASSERT_OK(batch(c.fd, RTPM_IOC_RELEASE_BATCH, rev, &n));
	}
}

static void test_stress_mpmc(void)
{
	uint64_t per = stress_packets / 4, i;
	size_t size = sizeof(struct mpmc_shared) + 2 * per;
	struct mpmc_shared *sh;
	struct rtpm_stats st;
	struct rtpm_status s;
	pid_t prod[2], cons[2], rogue;
	int fd = open_dev(0), k, status;

	sh = mmap(NULL, size, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(sh != MAP_FAILED);
	configure(fd, 6, SMALL_PAYLOAD, RTPM_DROP_REJECT_NEWEST);
	ASSERT_OK(ioctl(fd, RTPM_IOC_START));

	for (k = 0; k < 2; k++) {
		cons[k] = fork();
		ASSERT_TRUE(cons[k] >= 0);
		if (!cons[k])
			mpmc_consumer(sh, per);
	}
	rogue = fork();
	ASSERT_TRUE(rogue >= 0);
	if (!rogue)
		mpmc_producer(sh, MPMC_ROGUE, MPMC_ROGUE_PACKETS);
	for (k = 0; k < 2; k++) {
		prod[k] = fork();
		ASSERT_TRUE(prod[k] >= 0);
		if (!prod[k])
			mpmc_producer(sh, k, per);
	}
	/* Let the ring stall behind the hung rogue, then kill it. */
	for (k = 0; !__atomic_load_n(&sh->rogue_held, __ATOMIC_ACQUIRE); k++) {
		if (k == 3000)
			FAIL("the rogue producer never hung");
		sleep_ms(10);
	}
	sleep_ms(200);
	get_status(fd, &s);
	ASSERT_TRUE(s.producing >= sh->rogue_held);
	ASSERT_OK(kill(rogue, SIGKILL));
	ASSERT_EQ(waitpid(rogue, &status, 0), rogue);
	ASSERT_TRUE(WIFSIGNALED(status));
	__atomic_store_n(&sh->rogue_dead, 1, __ATOMIC_RELEASE);
	for (k = 0; k < 2; k++)
		wait_child_ok(prod[k]);
	wait_pair(cons[0], cons[1]);

	for (i = 0; i < 2 * per; i++)
		if (!sh->seen[i])
			FAIL("producer %" PRIu64 ": packet %" PRIu64 " lost",
			     i / per, i % per);
	get_stats(fd, &st);
	get_status(fd, &s);
	printf("# mpmc: %" PRIu64 " packets from 2 producers, %llu from the rogue, %llu reclaimed\n",
	       2 * per, (unsigned long long)(st.pushed_packets - 2 * per),
	       (unsigned long long)st.reclaimed);
	ASSERT_EQ(st.reclaimed, sh->rogue_held);
	ASSERT_EQ(st.pushed_packets, 2 * per + MPMC_ROGUE_PACKETS);
	ASSERT_EQ(st.pushed_packets, st.popped_packets);
	ASSERT_EQ(st.popped_packets, st.released);
	ASSERT_EQ(st.drops, 0);
	ASSERT_EQ(st.illegal_ops, 0);
	ASSERT_EQ(st.malformed, st.pushed_packets);
	ASSERT_EQ(s.producing, 0);
	ASSERT_EQ(s.consuming, 0);
	ASSERT_EQ(s.ready, 0);
	ASSERT_EQ(s.free, 64);
	ASSERT_EQ(s.reserve, s.release);
	ASSERT_EQ(s.openers, 1);
}

static const struct test tests[] = {
	{ "info_and_header", test_info_and_header, 30 },
	{ "unknown_ioctl_and_efault", test_unknown_ioctl_and_efault, 30 },
	{ "configure_errors", test_configure_errors, 30 },
	{ "jumbo_payload", test_jumbo_payload, 30 },
	{ "stopped_channel", test_stopped_channel, 30 },
	{ "single_slot_cycle", test_single_slot_cycle, 30 },
	{ "implicit_reserve", test_implicit_reserve, 30 },
	{ "slot_errors", test_slot_errors, 30 },
	{ "foreign_slots", test_foreign_slots, 30 },
	{ "batch_errors", test_batch_errors, 30 },
	{ "batch_cycle", test_batch_cycle, 30 },
	{ "out_of_order", test_out_of_order, 30 },
	{ "nonblock_full_and_empty", test_nonblock_full_and_empty, 30 },
	{ "blocking_interrupted", test_blocking_interrupted, 30 },
	{ "blocking_reserve_stop", test_blocking_reserve_stop, 30 },
	{ "poll", test_poll, 30 },
	{ "two_processes", test_two_processes, 60 },
	{ "mmap_policy", test_mmap_policy, 30 },
	{ "reclaim_on_close", test_reclaim_on_close, 30 },
	{ "reclaim_after_kill9", test_reclaim_after_kill9, 30 },
	{ "drop_reject_newest", test_drop_reject_newest, 30 },
	{ "drop_oldest", test_drop_oldest, 30 },
	{ "stats_conservation", test_stats_conservation, 60 },
	{ "rtp_tracking", test_rtp_tracking, 30 },
	{ "reset", test_reset, 30 },
	{ "sysfs", test_sysfs, 30 },
	{ "item1_configure_ceiling_and_cheap_checks",
	  test_item1_configure_ceiling_and_cheap_checks, 60 },
	{ "item1_configure_charged_and_busy_before_allocating",
	  test_item1_configure_charged_and_busy_before_allocating, 60 },
	{ "item2_readonly_opener_cannot_change_the_ring",
	  test_item2_readonly_opener_cannot_change_the_ring, 30 },
	{ "item2_unprivileged_opener_cannot_configure_or_stop",
	  test_item2_unprivileged_opener_cannot_configure_or_stop, 30 },
	{ "item2_claims_keep_a_third_file_out",
	  test_item2_claims_keep_a_third_file_out, 30 },
	{ "item3_implicit_push_needs_the_producer_role",
	  test_item3_implicit_push_needs_the_producer_role, 30 },
	{ "item4_cancel_and_push_after_stop",
	  test_item4_cancel_and_push_after_stop, 30 },
	{ "item5_reclaim_takes_back_a_hung_holders_slots",
	  test_item5_reclaim_takes_back_a_hung_holders_slots, 30 },
	{ "item6_owner_is_the_open_file", test_item6_owner_is_the_open_file,
	  120 },
	{ "item6_interrupted_wait_restarts_with_sa_restart",
	  test_item6_interrupted_wait_restarts_with_sa_restart, 30 },
	{ "item6_mappings_are_never_executable",
	  test_item6_mappings_are_never_executable, 30 },
	{ "item6_poll_after_stop", test_item6_poll_after_stop, 30 },
	{ "item6_stop_ends_a_blocked_pop", test_item6_stop_ends_a_blocked_pop,
	  30 },
	{ "item6_reserved_fields_must_be_zero",
	  test_item6_reserved_fields_must_be_zero, 30 },
	{ "item6_pop_returns_the_descriptor_flags",
	  test_item6_pop_returns_the_descriptor_flags, 30 },
	{ "item7_abi1_get_info_reports_version_2_and_other_v1_ioctls_get_enotty",
	  test_item7_abi1_get_info_reports_version_2_and_other_v1_ioctls_get_enotty,
	  30 },
	{ "denied_and_illegal_are_counted", test_denied_and_illegal_are_counted,
	  30 },
	{ "attach_rx_ipv4_in_order", test_attach_rx_ipv4_in_order, 30 },
	{ "attach_rx_ipv6_in_order", test_attach_rx_ipv6_in_order, 30 },
	{ "attach_rx_counts_what_it_cannot_keep",
	  test_attach_rx_counts_what_it_cannot_keep, 30 },
	{ "attach_errors", test_attach_errors, 30 },
	{ "attach_rx_teardown_orders", test_attach_rx_teardown_orders, 60 },
	{ "attach_churn_under_traffic", test_attach_churn_under_traffic, 120 },
	{ "attach_rmmod_refused", test_attach_rmmod_refused, 30 },
	{ "wakeup_rule", test_wakeup_rule, 60 },
	{ "attach_rx_coalesced_wakeups", test_attach_rx_coalesced_wakeups, 30 },
	{ "attach_detach_race", test_attach_detach_race, 120 },
	{ "wakeup_after_cancel_and_reclaim",
	  test_wakeup_after_cancel_and_reclaim, 30 },
	{ "pop_after_stop_with_late_push", test_pop_after_stop_with_late_push,
	  30 },
	{ "attach_role_stays_with_the_attachment",
	  test_attach_role_stays_with_the_attachment, 30 },
	{ "attach_tx_arguments", test_attach_tx_arguments, 30 },
	{ "attach_rx_gro_is_split", test_attach_rx_gro_is_split, 30 },
	{ "attach_tx_small_sndbuf_loses_nothing",
	  test_attach_tx_small_sndbuf_loses_nothing, 60 },
	{ "quality_rfc3550", test_quality_rfc3550, 30 },
	{ "events", test_events, 60 },
	{ "attach_tx_sends_every_slot", test_attach_tx_sends_every_slot, 60 },
	{ "attach_tx_paced", test_attach_tx_paced, 60 },
	{ "capture_copies_without_taking", test_capture_copies_without_taking,
	  30 },
	{ "capture_queue_full_and_snaplen", test_capture_queue_full_and_snaplen,
	  30 },
	{ "capture_errors_and_lifetime", test_capture_errors_and_lifetime, 30 },
	{ "capture_blocking_read", test_capture_blocking_read, 30 },
	{ "capture_attached_rx", test_capture_attached_rx, 30 },
	{ "stress_batch", test_stress_batch, 600 },
	{ "stress_per_slot", test_stress_per_slot, 600 },
	{ "stress_mpmc", test_stress_mpmc, 600 },
};

/* ------------------------------------------------------------------ main */

static struct rtpm_info saved;
/* The ceilings some tests lower; -1 if the module has no such parameter. */
static long long saved_max_ring_kib = -1, saved_max_total_kib = -1;

enum verdict { PASSED, FAILED, SKIPPED };

static void restore_params(void)
{
	char path[128], buf[32];

	if (saved_max_ring_kib >= 0 &&
	    read_param("max_ring_kib") != saved_max_ring_kib) {
		snprintf(path, sizeof(path), PARAM_DIR "max_ring_kib");
		snprintf(buf, sizeof(buf), "%lld", saved_max_ring_kib);
		if (write_text(path, buf))
			printf("# restoring max_ring_kib failed: %s\n",
			       strerror(errno));
	}
	if (saved_max_total_kib >= 0 &&
	    read_param("max_total_kib") != saved_max_total_kib) {
		snprintf(path, sizeof(path), PARAM_DIR "max_total_kib");
		snprintf(buf, sizeof(buf), "%lld", saved_max_total_kib);
		if (write_text(path, buf))
			printf("# restoring max_total_kib failed: %s\n",
			       strerror(errno));
	}
}

/* Put the channel back as it was before the suite ran. */
static int restore_channel(void)
{
	int fd = open(dev_path, O_RDWR);

	if (fd < 0)
		return -1;
	if (ioctl(fd, RTPM_IOC_STOP) ||
	    ioctl(fd, RTPM_IOC_CONFIGURE, &saved.config) ||
	    (saved.state == RTPM_STATE_RUNNING &&
	     ioctl(fd, RTPM_IOC_START))) {
		printf("# restoring %s failed: %s\n", dev_path,
		       strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static enum verdict run_one(const struct test *t)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return FAILED;
	if (!pid) {
		/* Its own process group, so that its helpers can be reaped. */
		setpgid(0, 0);
		alarm(t->timeout);
		t->fn();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return FAILED;
	/*
	 * A failed test may leave helpers behind (a hung holder waiting for
	 * a message that never comes) that keep slots, roles or mappings:
	 * end them before the next test.
	 */
	if (!kill(-pid, SIGKILL)) {
		int i;

		/* Their files close on exit; give them up to 2 s to go. */
		for (i = 0; i < 200 && !kill(-pid, 0); i++)
			sleep_ms(10);
	}
	if (WIFSIGNALED(status))
		printf("# %s: killed by signal %d%s\n", t->name,
		       WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	/* Leave no stray state for the next test. */
	{
		int fd = open(dev_path, O_RDWR);

		if (fd >= 0) {
			struct rtpm_wakeup w = { .slots = 1, .usecs = 0 };

			ioctl(fd, RTPM_IOC_STOP);
			/* The wake-up rule outlives files: back to the default. */
			ioctl(fd, RTPM_IOC_SET_WAKEUP, &w);
			close(fd);
		}
	}
	restore_params();
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS)
		return SKIPPED;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? PASSED : FAILED;
}

static const char *default_device(void)
{
	static char path[64];
	const char *env = getenv("RTPMGR_CHANNEL");
	struct rtpm_info info;
	int fd;

	/* The test runner names the channel the suites may reconfigure. */
	if (env && *env) {
		snprintf(path, sizeof(path), "/dev/%s%s", RTPM_DEVICE_PREFIX,
			 env);
		return path;
	}
	fd = open("/dev/" RTPM_DEVICE_PREFIX "0", O_RDWR);
	if (fd < 0)
		return "/dev/" RTPM_DEVICE_PREFIX "0";
	if (ioctl(fd, RTPM_IOC_GET_INFO, &info))
		info.channels = 1;
	close(fd);
	snprintf(path, sizeof(path), "/dev/%s%u", RTPM_DEVICE_PREFIX,
		 info.channels - 1);
	return path;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	unsigned int i, n = 0, passed = 0, failed = 0, skipped = 0;
	int opt, fd;

	while ((opt = getopt(argc, argv, "d:n:t:h")) != -1) {
		switch (opt) {
		case 'd':
			dev_path = optarg;
			break;
		case 'n':
			stress_packets = strtoul(optarg, NULL, 0);
			break;
		case 't':
			only = optarg;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-d /dev/rtp_mgrN] [-n stress_packets] [-t test]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!dev_path)
		dev_path = default_device();

	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!only || !strcmp(only, tests[i].name))
			n++;
	printf("TAP version 13\n1..%u\n# device %s\n", n, dev_path);

	fd = open(dev_path, O_RDWR);
	if (fd < 0 || ioctl(fd, RTPM_IOC_GET_INFO, &saved)) {
		printf("Bail out! %s: %s (is rtp_mgr loaded?)\n", dev_path,
		       strerror(errno));
		printf("0 passed, %u failed, 0 skipped\n", n);
		return 1;
	}
	close(fd);
	saved_max_ring_kib = read_param("max_ring_kib");
	saved_max_total_kib = read_param("max_total_kib");

	n = 0;
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		enum verdict v;

		if (only && strcmp(only, tests[i].name))
			continue;
		v = run_one(&tests[i]);
		printf("%sok %u - %s%s\n", v == FAILED ? "not " : "", ++n,
		       tests[i].name,
		       v == SKIPPED ? " # SKIP (reason above)" : "");
		if (v == PASSED)
			passed++;
		else if (v == SKIPPED)
			skipped++;
		else
			failed++;
	}
	if (restore_channel()) {
		printf("not ok %u - restore_channel\n", ++n);
		failed++;
	}
	printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
