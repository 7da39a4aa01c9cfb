#
# SPDX-License-Identifier: MIT
#
# testimage runtime tests of rtpmgr-image: the rtp_mgr module, its device nodes, rtp_app diag, the
# services and an RTP stream through the ring, then the on-device suites (diag, stream, kernel,
# conformance) through the same runner the QEMU harness uses:
# /usr/lib/rtpmgr/tests/run-device-tests <suite>.
#
# Enable with TEST_SUITES += "rtpmgr" (kas/testimage.yml does). Modelled on ksample.py and rtc.py:
# a missing prerequisite skips with the reason, every wait is bounded, every assertion message
# carries the command and its output, and state changed by a test is restored in tearDown.

import re
import time

from oeqa.core.decorator.depends import OETestDepends
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage

RUNNER = '/usr/lib/rtpmgr/tests/run-device-tests'
# files/rtp_mgr.conf (installed as /etc/modprobe.d/rtp_mgr.conf) loads the module with these.
EXPECTED_PARAMS = {'channels': '4', 'ring_order': '10', 'slot_payload': '2048'}
# files/feeder.toml [receive]: rtp-feeder receives on UDP port 5004 into channel 0 (kernel path).
RX_PORT = 5004
RX_CHANNEL = 0


class RtpmgrTestCase(OERuntimeTestCase):
    """Helpers shared by the rtpmgr tests."""

    def run_ok(self, cmd, timeout=None):
        """Run cmd on the target, fail with its output unless it exits 0, return the output."""
        status, output = self.target.run(cmd, timeout=timeout)
        self.assertEqual(status, 0, msg='"%s" exited with %d, output:\n%s' % (cmd, status, output))
        return output

    def init_manager(self):
        return self.tc.td.get('VIRTUAL-RUNTIME_init_manager')

    def service_cmd(self, service, action):
        if self.init_manager() == 'systemd':
            return 'systemctl %s %s' % (action, service)
        return '/etc/init.d/%s %s' % (service, action)

    def service_active(self, service):
        status, _ = self.target.run(self.service_cmd(service, 'is-active' if self.init_manager() == 'systemd'
                                                     else 'status'))
        return status == 0

    def wait_for(self, cmd, timeout_s, interval_s=1):
        """Run cmd until it exits 0 or timeout_s passes; return (status, output) of the last run."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, output = self.target.run(cmd)
            if status == 0 or time.monotonic() >= deadline:
                return status, output
            time.sleep(interval_s)

    def channel_stats(self, channel):
        """The text stats of a channel: {name: int} from /sys/class/misc/rtp_mgrN/stats."""
        output = self.run_ok('cat /sys/class/misc/rtp_mgr%d/stats' % channel)
        stats = {}
        for line in output.splitlines():
            m = re.match(r'^(\w+)\s+(\d+)$', line.strip())
            if m:
                stats[m.group(1)] = int(m.group(2))
        self.assertIn('pushed_packets', stats, msg='no pushed_packets in the stats of channel %d:\n%s'
                      % (channel, output))
        return stats

    def run_suite(self, suite, timeout=600):
        """Run one on-device suite with the harness's runner; fail unless it reports 0 failed."""
        status, output = self.target.run('%s %s' % (RUNNER, suite), timeout=timeout)
        summary = re.search(r'(\d+) passed, (\d+) failed', output)
        self.assertIsNotNone(summary, msg='%s %s printed no "N passed, N failed" summary (exit %d):\n%s'
                             % (RUNNER, suite, status, output))
        passed, failed = int(summary.group(1)), int(summary.group(2))
        self.assertEqual(failed, 0, msg='suite %s: %d failed:\n%s' % (suite, failed, output))
        self.assertGreater(passed, 0, msg='suite %s ran no test:\n%s' % (suite, output))
        self.assertEqual(status, 0, msg='suite %s exited with %d:\n%s' % (suite, status, output))


class RtpmgrModuleTest(RtpmgrTestCase):

    @OETestDepends(['ssh.SSHTest.test_ssh'])
    @OEHasPackage(['rtp-mgr'])
    def test_module_loaded(self):
        # Loaded at boot by /etc/modules-load.d/rtp_mgr.conf, not by this test.
        output = self.run_ok('cat /proc/modules')
        self.assertRegex(output, r'(?m)^rtp_mgr ', msg='rtp_mgr is not loaded:\n%s' % output)
        for name, want in EXPECTED_PARAMS.items():
            got = self.run_ok('cat /sys/module/rtp_mgr/parameters/%s' % name).strip()
            self.assertEqual(got, want, msg='module parameter %s is %s, /etc/modprobe.d/rtp_mgr.conf says %s'
                             % (name, got, want))

    @OETestDepends(['rtpmgr.RtpmgrModuleTest.test_module_loaded'])
    def test_device_nodes(self):
        # One node per channel, group rtpmgr, mode 0660 (60-rtp-mgr.rules); udev may still be busy
        # right after boot, hence the bounded wait.
        channels = int(EXPECTED_PARAMS['channels'])
        last = '/dev/rtp_mgr%d' % (channels - 1)
        status, output = self.wait_for('test -c %s' % last, timeout_s=30)
        self.assertEqual(status, 0, msg='%s did not appear within 30 s:\n%s' % (last, output))
        for n in range(channels):
            node = '/dev/rtp_mgr%d' % n
            output = self.run_ok('stat -c "%%F %%G %%a" %s' % node).strip()
            self.assertEqual(output, 'character special file rtpmgr 660',
                             msg='%s: want a character device of group rtpmgr, mode 660; got "%s"'
                             % (node, output))
        status, output = self.target.run('test -e /dev/rtp_mgr%d' % channels)
        self.assertNotEqual(status, 0, msg='/dev/rtp_mgr%d exists but channels=%d' % (channels, channels))

    @OETestDepends(['rtpmgr.RtpmgrModuleTest.test_device_nodes'])
    @OEHasPackage(['rtp-app'])
    def test_diag(self):
        # As the service user: diag must pass with the permissions the services have, not root's.
        output = self.run_ok('su -s /bin/sh -c "rtp_app diag" rtpmgr')
        self.logger.debug('rtp_app diag:\n%s' % output)


class RtpmgrServiceTest(RtpmgrTestCase):

    def check_service(self, service, process):
        if not self.service_active(service):
            _, log = self.target.run('tail -n 30 /var/log/rtpmgr/%s.log 2>/dev/null; journalctl -u %s -n 30 2>/dev/null'
                                     % (service, service))
            self.fail('service %s is not active; its log:\n%s' % (service, log))
        # It runs unprivileged: the uid of the process is that of user rtpmgr.
        uid = self.run_ok('id -u rtpmgr').strip()
        pid = self.run_ok('pidof %s' % process).split()[0]
        status_uid = self.run_ok('sed -n "s/^Uid:[[:space:]]*\\([0-9]*\\).*/\\1/p" /proc/%s/status' % pid).strip()
        self.assertEqual(status_uid, uid, msg='%s (pid %s) runs as uid %s, not as rtpmgr (%s)'
                         % (process, pid, status_uid, uid))

    @OETestDepends(['rtpmgr.RtpmgrModuleTest.test_device_nodes'])
    @OEHasPackage(['rtp-app'])
    def test_rx_service_not_enabled(self):
        # Installed for the socket path, not started: the feeder receives (a channel takes one receiver).
        self.run_ok('test -e /etc/default/rtp-rx')
        self.assertFalse(self.service_active('rtp-rx'),
                         msg='rtp-rx runs beside the feeder\'s [receive] socket on channel %d' % RX_CHANNEL)

    @OETestDepends(['rtpmgr.RtpmgrModuleTest.test_device_nodes'])
    @OEHasPackage(['rtp-feeder'])
    def test_feeder_service_active(self):
        self.check_service('rtp-feeder', 'rtp-feeder')
        # feeder.toml's [receive]: its socket is attached to the channel for RX.
        status = self.run_ok('cat /sys/class/misc/rtp_mgr%d/status' % RX_CHANNEL)
        self.assertIn('attached rx', status, msg='channel %d has no RX socket attached:\n%s' % (RX_CHANNEL, status))


class RtpmgrStreamTest(RtpmgrTestCase):

    @OETestDepends(['rtpmgr.RtpmgrServiceTest.test_feeder_service_active'])
    def test_stream_flows(self):
        # rtp_app tx sends 2 s of RTP to the feeder's [receive] socket; the kernel pushes it into
        # channel 0 and the feeder pops it into its pipeline. Both counters of the channel must grow.
        before = self.channel_stats(RX_CHANNEL)
        self.run_ok('rtp_app --mode tx --dst 127.0.0.1 --port %d --rate 200 --payload 160 -t 2 --channel 1'
                    % RX_PORT, timeout=60)
        # The consumer may lag by its jitterbuffer latency: poll, bounded.
        deadline = time.monotonic() + 10
        while True:
            after = self.channel_stats(RX_CHANNEL)
            if after['popped_packets'] > before['popped_packets'] or time.monotonic() >= deadline:
                break
            time.sleep(1)
        pushed = after['pushed_packets'] - before['pushed_packets']
        popped = after['popped_packets'] - before['popped_packets']
        self.assertGreater(pushed, 0, msg='the kernel pushed nothing into channel %d: before %s, after %s'
                           % (RX_CHANNEL, before, after))
        self.assertGreater(popped, 0, msg='rtp-feeder popped nothing from channel %d: before %s, after %s'
                           % (RX_CHANNEL, before, after))
        self.assertEqual(after['malformed'], before['malformed'],
                         msg='malformed packets in channel %d: before %s, after %s' % (RX_CHANNEL, before, after))


class RtpmgrLiveSuitesTest(RtpmgrTestCase):
    """On-device suites that run beside the services, exactly as the QEMU harness runs them."""

    @OETestDepends(['rtpmgr.RtpmgrModuleTest.test_device_nodes'])
    @OEHasPackage(['rtpmgr-tests'])
    def test_suite_diag(self):
        self.run_suite('diag')

    @OETestDepends(['rtpmgr.RtpmgrStreamTest.test_stream_flows'])
    @OEHasPackage(['rtpmgr-tests'])
    def test_suite_stream(self):
        self.run_suite('stream')


class RtpmgrExclusiveSuitesTest(RtpmgrTestCase):
    """On-device suites that own the module: they reconfigure channels and unload/reload rtp_mgr."""

    def setUp(self):
        # Stop the services (they hold the channels open), restart them afterwards.
        self.stopped = []
        for service in ('rtp-feeder', 'rtp-rx'):
            if self.service_active(service):
                self.run_ok(self.service_cmd(service, 'stop'))
                self.stopped.append(service)

    def tearDown(self):
        # The kernel suite unloads and reloads the module; make sure it is back before the services.
        self.target.run('modprobe rtp_mgr')
        for service in reversed(self.stopped):
            self.target.run(self.service_cmd(service, 'start'))

    @OETestDepends(['rtpmgr.RtpmgrLiveSuitesTest.test_suite_stream'])
    @OEHasPackage(['rtpmgr-tests'])
    def test_suite_kernel(self):
        self.run_suite('kernel')

    @OETestDepends(['rtpmgr.RtpmgrLiveSuitesTest.test_suite_stream'])
    @OEHasPackage(['rtpmgr-tests'])
    def test_suite_conformance(self):
        self.run_suite('conformance')
