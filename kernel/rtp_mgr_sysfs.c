// SPDX-License-Identifier: GPL-2.0-only
/*
 * rtp_mgr_sysfs.c - text attributes of each channel, readable with cat:
 *
 *   /sys/class/misc/rtp_mgrN/stats    "name value" per struct rtpm_stats field
 *   /sys/class/misc/rtp_mgrN/status   "name value" per struct rtpm_status field
 *   /sys/class/misc/rtp_mgrN/config   the ring's configuration and layout
 *
 * The misc core creates them with the device (miscdevice.groups), so they
 * exist exactly as long as /dev/rtp_mgrN does.
 */
#include <linux/device.h>
#include <linux/sysfs.h>

#include "rtp_mgr_ring.h"

static struct rtpm_channel *rtpm_dev_to_channel(struct device *dev)
{
	/* misc_register() stores the miscdevice as the device's drvdata. */
	return rtpm_misc_to_channel(dev_get_drvdata(dev));
}

#define RTPM_EMIT(st, field) \
	(len += sysfs_emit_at(buf, len, "%s %llu\n", #field, \
			      (unsigned long long)(st).field))

static ssize_t stats_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct rtpm_stats st;
	int len = 0;

	rtpm_chan_stats(rtpm_dev_to_channel(dev), &st);
	RTPM_EMIT(st, pushed_packets);
	RTPM_EMIT(st, pushed_bytes);
	RTPM_EMIT(st, popped_packets);
	RTPM_EMIT(st, popped_bytes);
	RTPM_EMIT(st, released);
	RTPM_EMIT(st, drops);
	RTPM_EMIT(st, overruns);
	RTPM_EMIT(st, underruns);
	RTPM_EMIT(st, rtp_lost);
	RTPM_EMIT(st, rtp_reordered);
	RTPM_EMIT(st, rtp_duplicates);
	RTPM_EMIT(st, malformed);
	RTPM_EMIT(st, reclaimed);
	RTPM_EMIT(st, illegal_ops);
	RTPM_EMIT(st, cancelled);
	RTPM_EMIT(st, denied);
	RTPM_EMIT(st, evicted);
	RTPM_EMIT(st, rx_oversize);
	RTPM_EMIT(st, rx_discarded);
	RTPM_EMIT(st, wakeups);
	RTPM_EMIT(st, tx_sent);
	RTPM_EMIT(st, tx_errors);
	return len;
}
static DEVICE_ATTR_RO(stats);

static ssize_t status_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct rtpm_status st;
	int len = 0;

	rtpm_chan_status(rtpm_dev_to_channel(dev), &st);
	len += sysfs_emit_at(buf, len, "state %s\n",
			     st.state == RTPM_STATE_RUNNING ? "running" :
							      "stopped");
	RTPM_EMIT(st, openers);
	RTPM_EMIT(st, mappings);
	RTPM_EMIT(st, free);
	RTPM_EMIT(st, producing);
	RTPM_EMIT(st, ready);
	RTPM_EMIT(st, consuming);
	len += sysfs_emit_at(buf, len, "claimed%s%s%s\n",
			     st.claimed & RTPM_ROLE_PRODUCER ? " producer" : "",
			     st.claimed & RTPM_ROLE_CONSUMER ? " consumer" : "",
			     st.claimed ? "" : " none");
	RTPM_EMIT(st, reserve);
	RTPM_EMIT(st, producer);
	RTPM_EMIT(st, consumer);
	RTPM_EMIT(st, release);
	len += sysfs_emit_at(buf, len, "attached%s%s%s\n",
			     st.attached & RTPM_ATTACHED_RX ? " rx" : "",
			     st.attached & RTPM_ATTACHED_TX ? " tx" : "",
			     st.attached ? "" : " none");
	return len;
}
static DEVICE_ATTR_RO(status);

/*
 * The wake-up rule (SET_WAKEUP), "slots usecs": readable by all, writable
 * by root (the file mode), e.g. from a udev rule or an init script.
 */
static ssize_t wakeup_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	u32 slots, usecs;

	rtpm_chan_get_wakeup(rtpm_dev_to_channel(dev), &slots, &usecs);
	return sysfs_emit(buf, "%u %u\n", slots, usecs);
}

static ssize_t wakeup_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	u32 slots, usecs;

	if (sscanf(buf, "%u %u", &slots, &usecs) != 2)
		return -EINVAL;
	return rtpm_chan_set_wakeup(rtpm_dev_to_channel(dev), slots, usecs) ?:
	       count;
}
static DEVICE_ATTR_RW(wakeup);

static ssize_t config_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct rtpm_channel *ch = rtpm_dev_to_channel(dev);
	struct rtpm_config cfg;
	u32 slot_count, slot_stride;
	u64 meta_size, payload_size;
	int len = 0;

	/* The ring may be replaced by CONFIGURE: read it under the lock. */
	spin_lock_bh(&ch->lock);
	cfg = ch->ring->cfg;
	slot_count = ch->ring->slot_count;
	slot_stride = ch->ring->slot_stride;
	meta_size = ch->ring->meta_size;
	payload_size = ch->ring->payload_size;
	spin_unlock_bh(&ch->lock);

	len += sysfs_emit_at(buf, len, "ring_order %u\n", cfg.ring_order);
	len += sysfs_emit_at(buf, len, "slot_payload %u\n", cfg.slot_payload);
	len += sysfs_emit_at(buf, len, "drop_policy %u\n", cfg.drop_policy);
	len += sysfs_emit_at(buf, len, "slot_count %u\n", slot_count);
	len += sysfs_emit_at(buf, len, "slot_stride %u\n", slot_stride);
	len += sysfs_emit_at(buf, len, "meta_size %llu\n",
			     (unsigned long long)meta_size);
	len += sysfs_emit_at(buf, len, "payload_offset %llu\n",
			     (unsigned long long)meta_size);
	len += sysfs_emit_at(buf, len, "payload_size %llu\n",
			     (unsigned long long)payload_size);
	len += sysfs_emit_at(buf, len, "abi %u.%u\n", RTPM_ABI_MAJOR,
			     RTPM_ABI_MINOR);
	return len;
}
static DEVICE_ATTR_RO(config);

static struct attribute *rtpm_attrs[] = {
	&dev_attr_stats.attr,
	&dev_attr_status.attr,
	&dev_attr_config.attr,
	&dev_attr_wakeup.attr,
	NULL,
};

static const struct attribute_group rtpm_group = {
	.attrs = rtpm_attrs,
};

const struct attribute_group *rtpm_sysfs_groups[] = {
	&rtpm_group,
	NULL,
};
