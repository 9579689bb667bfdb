#!/usr/bin/env python3
"""The real-process fault harness: a balsad cluster in network namespaces under a nemesis.

Each member runs in its own network namespace, attached by a veth pair to a bridge the harness
creates; its data dir is a small loop-mounted ext4 filesystem (tmpfs if loop devices are
unavailable). balsa-chaos-client records a history from the host side of the bridge, and
balsa-check checks it for linearizability. Everything the harness creates (namespaces, bridge,
veths, mounts, loop devices, processes) is recorded as it is created and removed on exit, on
Ctrl-C and after a failure; iptables rules live inside the namespaces and go with them.

Faults (--nemesis, comma separated):
  partition  symmetric (majority | minority, sometimes isolating the leader), asymmetric (one
             direction between two members dropped) and bridge (two halves that only a middle
             member reaches) partitions, and random loss (iptables -m statistic) on peer traffic
  kill       SIGKILL a member (the leader half the time), restart it after a pause
  pause      SIGSTOP a member (the leader half the time), SIGCONT it after a pause
  clock      restart a member under libfaketime with a clock offset and rate; the rate stays
             within --max-clock-drift (lease reads, when they land, must be safe within it)
  disk       fill a member's data filesystem (ENOSPC), then free it and restart the member if it
             stopped; or make its fsync fail with EIO (it must stop at once, its data dir must
             verify with balsa-log), or stall its fsync
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEMESES = ("partition", "kill", "pause", "clock", "disk")


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def sh(*args, check=True, quiet=True, **kw):
    r = subprocess.run(list(args), stdout=subprocess.PIPE if quiet else None,
                       stderr=subprocess.STDOUT if quiet else None, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, (r.stdout or "").strip()))
    return r


class Cleanup:
    """A stack of undo actions, run in reverse order, each guarded."""

    def __init__(self):
        self.actions = []

    def push(self, what, fn):
        self.actions.append((what, fn))

    def run(self):
        while self.actions:
            what, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning up whatever else there is
                print("cleanup: %s: %s" % (what, e), file=sys.stderr)


class Member:
    def __init__(self, h, i):
        self.h, self.i = h, i
        self.name = "m%d" % i
        self.ns = "%s-%s" % (h.tag, self.name)
        self.ip = "%s.%d" % (h.net, 10 + i)
        self.dir = os.path.join(h.dir, self.name)
        self.data = os.path.join(self.dir, "data")
        self.logf = os.path.join(self.dir, "balsad.log")
        self.fault_ctl = os.path.join(self.dir, "fsync-fault")
        self.proc = None
        self.paused = False
        self.faketime = None   # libfaketime spec while skewed
        self.ballast = None    # path of the file filling the disk
        self.exits = []        # (time, returncode) of exits the harness did not cause

    @property
    def client_ep(self):
        return "%s:2379" % self.ip

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Harness:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.tag = "bc%04x" % (os.getpid() & 0xFFFF)
        self.bridge = self.tag + "br"
        self.net = "10.%d.%d" % (100 + (os.getpid() >> 8) % 100, os.getpid() % 250)
        self.dir = tempfile.mkdtemp(prefix="balsa-chaos.", dir=args.workdir)
        self.clean = Cleanup()
        self.members = [Member(self, i) for i in range(args.members)]
        self.faults = {}
        self.findings = []
        self.disk_events = []
        self.bin = args.build
        self.balsad = os.path.join(self.bin, "src/balsad/balsad")
        self.client = os.path.join(self.bin, "tests/chaos/balsa-chaos-client")
        self.check = os.path.join(self.bin, "tools/balsa-check")
        self.balsa_log = os.path.join(self.bin, "tools/balsa-log")
        self.shim = os.path.join(self.bin, "tests/chaos/libbalsa_fsync_fault.so")
        for b in (self.balsad, self.client, self.check, self.balsa_log, self.shim):
            if not os.path.exists(b):
                raise SystemExit("chaos: %s not built (scripts/build.sh)" % b)

    def count(self, kind):
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def finding(self, msg):
        log("FINDING: " + msg)
        self.findings.append(msg)

    # ---- setup ---------------------------------------------------------------------------
    def setup(self):
        self.clean.push("remove " + self.dir, lambda: (not self.a.keep) and shutil.rmtree(self.dir, ignore_errors=True))
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.clean.push("bridge", lambda: sh("ip", "link", "del", self.bridge, check=False))
        sh("ip", "addr", "add", self.net + ".1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for m in self.members:
            os.makedirs(m.data)
            sh("ip", "netns", "add", m.ns)
            self.clean.push("netns " + m.ns, lambda m=m: sh("ip", "netns", "del", m.ns, check=False))
            host_if = "%sv%d" % (self.tag, m.i)
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", m.ns)
            self.clean.push("veth " + host_if, lambda h=host_if: sh("ip", "link", "del", h, check=False))
            sh("ip", "link", "set", host_if, "master", self.bridge, "up")
            self.nsx(m, "ip", "addr", "add", m.ip + "/24", "dev", "eth0")
            self.nsx(m, "ip", "link", "set", "eth0", "up")
            self.nsx(m, "ip", "link", "set", "lo", "up")
            self.mount_data(m)
        log("cluster of %d in %s (bridge %s, %s.0/24)" % (len(self.members), self.dir, self.bridge, self.net))

    def mount_data(self, m):
        mb = self.a.disk_mb
        img = os.path.join(m.dir, "disk.img")
        try:
            with open(img, "wb") as f:
                f.truncate(mb << 20)
            sh("mkfs.ext4", "-q", "-F", "-m", "0", img)
            sh("mount", "-o", "loop", img, m.data)
            kind = "ext4 on a loop device"
        except Exception as e:
            log("loop mount failed (%s); using tmpfs" % e)
            sh("mount", "-t", "tmpfs", "-o", "size=%dm" % mb, "tmpfs", m.data)
            kind = "tmpfs"
        self.clean.push("umount " + m.data, lambda: sh("umount", "-l", m.data, check=False))
        m.fs_kind = kind

    def nsx(self, m, *cmd, check=True):
        return sh("ip", "netns", "exec", m.ns, *cmd, check=check)

    # ---- members -------------------------------------------------------------------------
    def cluster_flag(self):
        return ",".join("%s=http://%s:2380" % (m.name, m.ip) for m in self.members)

    def start(self, m, faketime=None):
        assert not m.alive()
        env = dict(os.environ)
        env["BALSA_FSYNC_FAULT"] = m.fault_ctl
        env["BALSA_FSYNC_FAULT_PREFIX"] = m.data
        preload = [self.shim]
        m.faketime = faketime
        if faketime:
            lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
            preload.append(lib)
            env["FAKETIME"] = faketime
            env["FAKETIME_NO_CACHE"] = "1"
            env["DONT_FAKE_MONOTONIC"] = "0"
        env["LD_PRELOAD"] = ":".join(preload)
        cmd = ["ip", "netns", "exec", m.ns, self.balsad, "--name", m.name, "--data-dir", m.data,
               "--initial-cluster-token", self.tag, "--initial-cluster", self.cluster_flag(),
               "--listen-client-urls", "http://%s:2379" % m.ip, "--advertise-client-urls", "http://%s:2379" % m.ip,
               "--listen-peer-urls", "http://%s:2380" % m.ip, "--initial-advertise-peer-urls",
               "http://%s:2380" % m.ip, "--listen-metrics-urls", "http://%s:2381" % m.ip,
               "--election-timeout", str(self.a.election_ms), "--heartbeat-interval", "100",
               "--snapshot-count", str(self.a.snapshot_count)]
        out = open(m.logf, "a")
        out.write("=== harness: start%s at %s\n" % (" under FAKETIME=" + faketime if faketime else "", time.time()))
        out.flush()
        # ip netns exec execs balsad in place: the PID is balsad's own.
        m.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        m.paused = False

    def kill(self, m, sig=signal.SIGKILL):
        if m.proc is None:
            return
        if m.proc.poll() is None:
            if m.paused:
                os.kill(m.proc.pid, signal.SIGCONT)
            os.kill(m.proc.pid, sig)
            try:
                m.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(m.proc.pid, signal.SIGKILL)
                m.proc.wait()
        m.proc = None
        m.paused = False

    def reap_unexpected(self):
        """Members that exited on their own (disk faults): note and return them."""
        out = []
        for m in self.members:
            if m.proc is not None and m.proc.poll() is not None:
                m.exits.append((time.time(), m.proc.returncode))
                out.append((m, m.proc.returncode))
                m.proc = None
        return out

    def metric(self, m, name):
        try:
            r = sh("curl", "-s", "--max-time", "1", "http://%s:2381/metrics" % m.ip, check=False)
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == name:
                    return float(parts[1])
        except Exception:
            pass
        return None

    def leader(self):
        for m in self.members:
            if m.alive() and not m.paused and self.metric(m, "etcd_server_is_leader") == 1:
                return m
        return None

    def wait_leader(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ld = self.leader()
            if ld:
                return ld
            time.sleep(0.2)
        return None

    # ---- network faults ------------------------------------------------------------------
    def drop(self, m, peer_ips, direction="both"):
        for ip in peer_ips:
            if direction in ("both", "in"):
                self.nsx(m, "iptables", "-w", "-A", "INPUT", "-s", ip, "-j", "DROP")
            if direction in ("both", "out"):
                self.nsx(m, "iptables", "-w", "-A", "OUTPUT", "-d", ip, "-j", "DROP")

    def heal_net(self):
        for m in self.members:
            self.nsx(m, "iptables", "-w", "-F", "INPUT", check=False)
            self.nsx(m, "iptables", "-w", "-F", "OUTPUT", check=False)

    def partition(self):
        ms = list(self.members)
        kind = self.rng.choice(["symmetric", "symmetric-leader", "asymmetric", "bridge", "loss"])
        ld = self.leader()
        if kind == "symmetric-leader" and ld is None:
            kind = "symmetric"
        if kind in ("symmetric", "symmetric-leader"):
            self.rng.shuffle(ms)
            if kind == "symmetric-leader":
                ms.remove(ld)
                ms.insert(0, ld)
            minority = ms[:(len(ms) - 1) // 2]
            majority = ms[len(minority):]
            for m in minority:
                self.drop(m, [x.ip for x in majority])
            for m in majority:
                self.drop(m, [x.ip for x in minority])
            desc = "%s | %s" % ([m.name for m in minority], [m.name for m in majority])
        elif kind == "asymmetric":
            a, b = self.rng.sample(ms, 2)
            self.drop(b, [a.ip], "in")  # a's packets never reach b; b's reach a
            desc = "%s -> %s dropped" % (a.name, b.name)
        elif kind == "bridge":
            self.rng.shuffle(ms)
            mid = ms[0]
            rest = ms[1:]
            left, right = rest[:len(rest) // 2], rest[len(rest) // 2:]
            for m in left:
                self.drop(m, [x.ip for x in right])
            for m in right:
                self.drop(m, [x.ip for x in left])
            desc = "%s | %s | %s (only %s reaches both)" % ([m.name for m in left], mid.name,
                                                            [m.name for m in right], mid.name)
        else:
            p = self.rng.choice([0.1, 0.3, 0.5])
            for m in ms:
                for x in ms:
                    if x is not m:
                        self.nsx(m, "iptables", "-w", "-A", "INPUT", "-s", x.ip, "-m", "statistic", "--mode",
                                 "random", "--probability", str(p), "-j", "DROP")
            desc = "%.0f%% loss on peer traffic" % (p * 100)
        self.count("partition-" + kind.split("-")[0] if kind != "symmetric-leader" else "partition-symmetric")
        if kind == "symmetric-leader":
            self.count("partition-leader-isolated")
        log("nemesis: partition %s: %s" % (kind, desc))
        return self.heal_net

    # ---- process faults ------------------------------------------------------------------
    def target(self):
        ld = self.leader()
        if ld and self.rng.random() < 0.5:
            return ld, True
        alive = [m for m in self.members if m.alive() and not m.paused]
        return (self.rng.choice(alive), False) if alive else (None, False)

    def kill_fault(self):
        m, is_ld = self.target()
        if m is None:
            return None
        log("nemesis: SIGKILL %s%s" % (m.name, " (leader)" if is_ld else ""))
        self.kill(m)
        self.count("kill")

        def heal():
            self.start(m, m.faketime)
        return heal

    def pause_fault(self):
        m, is_ld = self.target()
        if m is None:
            return None
        log("nemesis: SIGSTOP %s%s" % (m.name, " (leader)" if is_ld else ""))
        os.kill(m.proc.pid, signal.SIGSTOP)
        m.paused = True
        self.count("pause")

        def heal():
            if m.alive():
                os.kill(m.proc.pid, signal.SIGCONT)
            m.paused = False
        return heal

    def clock_fault(self):
        m, is_ld = self.target()
        if m is None:
            return None
        drift = self.a.max_clock_drift
        rate = 1.0 + self.rng.uniform(-drift, drift)
        offset = self.rng.choice([-3600, -60, -5, 5, 60, 3600])
        spec = "%+ds x%.4f" % (offset, rate)
        log("nemesis: clock %s%s: restart under FAKETIME='%s'" % (m.name, " (leader)" if is_ld else "", spec))
        self.kill(m)
        self.start(m, spec)
        self.count("clock")

        def heal():
            log("heal: clock %s back to real time (restart)" % m.name)
            self.kill(m)
            self.start(m, None)
        return heal

    def disk_fault(self):
        kind = self.rng.choice(["full", "full", "eio", "delay"])
        m, is_ld = self.target()
        if m is None:
            return None
        who = m.name + (" (leader)" if is_ld else "")
        if kind == "full":
            st = os.statvfs(m.data)
            free = st.f_bavail * st.f_frsize
            m.ballast = os.path.join(m.data, "ballast")
            # fallocate takes every free block at once; a few blocks stay for metadata at most.
            sh("fallocate", "-l", str(max(free - 4096, 4096)), m.ballast, check=False)
            log("nemesis: disk full on %s (%d MB taken)" % (who, free >> 20))
            self.count("disk-full")
        elif kind == "eio":
            shim_log = m.fault_ctl + ".log"
            m.shim_log_size = os.path.getsize(shim_log) if os.path.exists(shim_log) else 0
            with open(m.fault_ctl, "w") as f:
                f.write("eio\n")
            log("nemesis: fsync EIO on %s" % who)
            self.count("disk-eio")
            self.eio_since = time.time()
        else:
            ms = self.rng.choice([50, 200, 1000])
            with open(m.fault_ctl, "w") as f:
                f.write("delay %d\n" % ms)
            log("nemesis: fsync delay %d ms on %s" % (ms, who))
            self.count("disk-delay")

        def heal():
            if kind == "eio":
                self.heal_eio(m)
            if m.ballast:
                os.unlink(m.ballast)
                m.ballast = None
                log("heal: disk of %s freed" % m.name)
            if os.path.exists(m.fault_ctl):
                os.unlink(m.fault_ctl)
            for x, rc in self.reap_unexpected():
                log("%s had exited (code %s): %s" % (x.name, rc, self.last_critical(x)))
            if not m.alive():
                log("heal: restarting %s" % m.name)
                self.start(m, m.faketime)
        return heal

    def heal_eio(self, m):
        """An fsync EIO must stop the member at once, and its data dir must still verify."""
        deadline = time.time() + 10
        while m.alive() and time.time() < deadline:
            time.sleep(0.05)
        if m.alive():
            # A member with no write to sync (paused or idle) never hit the fault: not a failure.
            shim_log = m.fault_ctl + ".log"
            hit = os.path.exists(shim_log) and os.path.getsize(shim_log) > getattr(m, "shim_log_size", 0)
            if hit:
                self.finding("%s kept running after an fsync EIO" % m.name)
            else:
                log("%s made no fsync during the EIO window" % m.name)
            return
        rc = m.proc.returncode
        m.exits.append((time.time(), rc))
        m.proc = None
        log("%s stopped on fsync EIO (exit %s): %s" % (m.name, rc, self.last_critical(m)))
        self.count("disk-eio-stopped")
        os.unlink(m.fault_ctl)
        r = sh(self.balsa_log, "verify", os.path.join(m.data, "member/raft"), check=False)
        if r.returncode != 0:
            self.finding("balsa-log verify failed on %s after fsync EIO: %s" % (m.name, r.stdout.strip()))
        else:
            log("balsa-log verify %s/member/raft: %s" % (m.name, r.stdout.strip().splitlines()[-1:]))

    def last_critical(self, m):
        try:
            with open(m.logf) as f:
                lines = [l.strip() for l in f if " critical " in l]
            return lines[-1] if lines else "(no critical line)"
        except OSError:
            return "?"

    # ---- run -----------------------------------------------------------------------------
    def start_client(self):
        eps = ",".join(m.client_ep for m in self.members)
        history = os.path.join(self.dir, "history.jsonl")
        summary = os.path.join(self.dir, "client-summary.json")
        ccmd = [self.client, "--endpoints", eps, "--duration", str(self.a.duration), "--clients",
                str(self.a.clients), "--keys", str(self.a.keys), "--history", history, "--summary", summary,
                "--seed", str(self.a.seed), "--timeout-ms", str(self.a.timeout_ms), "--ack-page", str(self.a.ack_page)]
        if self.a.serializable:
            ccmd.append("--serializable")
        cout = open(os.path.join(self.dir, "client.log"), "w")
        client = subprocess.Popen(ccmd, stdout=cout, stderr=subprocess.STDOUT)
        self.clean.push("client", lambda: client.poll() is None and client.kill())
        self.cout = cout
        log("client: %d clients on %d keys for %d s%s" % (self.a.clients, self.a.keys, self.a.duration,
                                                        " (serializable reads)" if self.a.serializable else ""))
        return client, history, summary

    def run(self):
        self.setup()
        for m in self.members:
            self.start(m)
        if not self.wait_leader(30):
            raise RuntimeError("no leader within 30 s")
        client, history, summary = self.start_client()
        nemeses = [n for n in self.a.nemesis.split(",") if n]
        for n in nemeses:
            if n not in NEMESES:
                raise SystemExit("chaos: unknown nemesis %s (have %s)" % (n, ",".join(NEMESES)))
        fns = {"partition": self.partition, "kill": self.kill_fault, "pause": self.pause_fault,
               "clock": self.clock_fault, "disk": self.disk_fault}
        end = time.time() + self.a.duration - self.a.quiet_tail
        while time.time() < end and nemeses:
            time.sleep(self.rng.uniform(0.5, 2.0) * self.a.interval)
            if time.time() >= end:
                break
            heal = fns[self.rng.choice(nemeses)]()
            time.sleep(self.rng.uniform(1.0, 3.0) * self.a.interval)
            if heal:
                heal()
            for x, rc in self.reap_unexpected():
                self.finding("%s exited on its own (code %s): %s" % (x.name, rc, self.last_critical(x)))
                self.start(x, x.faketime)
        # Heal everything: the final phase must reach every member.
        self.heal_net()
        for m in self.members:
            if m.faketime:
                self.kill(m)
                self.start(m)
            elif not m.alive():
                self.start(m)
        log("healed; waiting for the client's final reads")
        client.wait()
        return self.report(history, summary, client.returncode)

    # ---- the disk-fault scenario (item: disk faults on a real process) ---------------------
    def probe(self, n, avoid=None):
        """One put through any member but `avoid` (etcdctl, 3 s): True if acknowledged."""
        eps = ",".join(m.client_ep for m in self.members if m.alive() and m is not avoid)
        r = sh("etcdctl", "--endpoints=" + eps, "--dial-timeout=2s", "--command-timeout=3s", "put",
               "probe/%d" % n, "v", check=False, env=dict(os.environ, ETCDCTL_API="3"))
        return r.returncode == 0

    def applied(self, m):
        v = self.metric(m, "balsa_raft_applied_index")
        return int(v) if v is not None else None

    def wait_caught_up(self, m, timeout=40):
        ld = self.wait_leader(20)
        if ld is None:
            self.finding("no leader while %s catches up" % m.name)
            return
        target = self.applied(ld) or 0
        deadline = time.time() + timeout
        while time.time() < deadline:
            a = self.applied(m)
            if a is not None and a >= target:
                log("%s caught up (applied %d >= leader's %d)" % (m.name, a, target))
                return
            time.sleep(0.3)
        self.finding("%s did not catch up within %d s (applied %s < %d)" % (m.name, timeout, self.applied(m), target))

    def watch_exit(self, m, timeout, probes, avoid=None):
        """Probes the cluster every 0.5 s until m exits or timeout. Returns (exited, probe ok, probe failed)."""
        ok = bad = 0
        deadline = time.time() + timeout
        while time.time() < deadline and m.alive():
            if probes:
                probes[0] += 1
                if self.probe(probes[0], avoid):
                    ok += 1
                else:
                    bad += 1
            time.sleep(0.5)
        return not m.alive(), ok, bad

    def disk_full(self, m, role):
        st = os.statvfs(m.data)
        m.ballast = os.path.join(m.data, "ballast")
        sh("fallocate", "-l", str(max(st.f_bavail * st.f_frsize - 4096, 4096)), m.ballast)
        t0 = time.time()
        log("disk full on %s (%s); probing the cluster while it runs into ENOSPC" % (m.name, role))
        self.count("disk-full")
        exited, ok, bad = self.watch_exit(m, 40, self.probes, m if role == "follower" else None)
        if exited:
            rc = m.proc.returncode
            m.exits.append((time.time(), rc))
            m.proc = None
            line = self.last_critical(m)
            dt = self.stop_latency(m, t0)
            log("%s stopped %.2f s after its disk filled (by its log; exit %s): %s" % (m.name, dt or -1, rc, line))
            self.disk_events.append({"fault": "disk-full", "member": m.name, "role": role, "stopped_after_s": dt,
                                     "exit": rc, "probes_ok": ok, "probes_failed": bad})
            if "No space left on device" not in line:
                self.finding("%s stopped on a full disk without naming ENOSPC: %s" % (m.name, line))
            r = sh(self.balsa_log, "verify", os.path.join(m.data, "member/raft"), check=False)
            log("balsa-log verify %s/member/raft (disk still full): exit %d: %s" %
                (m.name, r.returncode, r.stdout.strip().splitlines()[-1:]))
            if r.returncode != 0:
                self.finding("data dir of %s does not verify after ENOSPC: %s" % (m.name, r.stdout.strip()))
        else:
            log("%s still running after 40 s of a full disk" % m.name)
        if role == "follower" and bad:
            self.finding("%d of %d probes failed while follower %s had a full disk" % (bad, ok + bad, m.name))
        log("probes while %s was full: %d ok, %d failed" % (m.name, ok, bad))
        if role == "leader":
            nl = self.wait_leader(20)
            log("leader after the full disk: %s" % (nl.name if nl else "none"))
            if nl is None or nl is m and not exited:
                self.finding("no other leader while %s had a full disk" % m.name)
        # Restart refused while still full? Then free the space and start again.
        if not m.alive():
            self.start(m)
            time.sleep(3)
            if m.alive():
                log("%s runs again on a full disk (it needs no new space to start)" % m.name)
            else:
                log("%s, restarted on the still-full disk, stopped again: %s" % (m.name, self.last_critical(m)))
                m.proc = None
        os.unlink(m.ballast)
        m.ballast = None
        log("freed the disk of %s" % m.name)
        if not m.alive():
            self.start(m)
        self.wait_caught_up(m)

    def stop_latency(self, m, t0):
        """Seconds from t0 to the member's last critical log line (its own timestamp)."""
        g = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)", self.last_critical(m))
        if not g:
            return None
        import datetime
        t = datetime.datetime.strptime(g.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        return t.timestamp() - t0

    def fsync_eio(self, m, role):
        with open(m.fault_ctl, "w") as f:
            f.write("eio\n")
        t0 = time.time()
        self.count("disk-eio")
        log("fsync EIO on %s (%s)" % (m.name, role))
        exited, ok, bad = self.watch_exit(m, 20, self.probes, m if role == "follower" else None)
        shim_log = m.fault_ctl + ".log"
        with open(shim_log) as f:
            first = f.readline().strip()
        if not exited:
            self.finding("%s kept running 20 s after its fsync failed (%s)" % (m.name, first))
            return
        dt = self.stop_latency(m, t0)
        rc = m.proc.returncode
        m.proc = None
        log("%s stopped %.3f s after the fault (by its log; exit %s; shim: '%s'): %s" %
            (m.name, dt if dt is not None else -1, rc, first, self.last_critical(m)))
        self.disk_events.append({"fault": "fsync-eio", "member": m.name, "role": role, "stopped_after_s": dt,
                                 "exit": rc, "verify_rc": None})
        os.unlink(m.fault_ctl)
        r = sh(self.balsa_log, "verify", os.path.join(m.data, "member/raft"), check=False)
        log("balsa-log verify %s/member/raft: exit %d: %s" % (m.name, r.returncode, r.stdout.strip().splitlines()[-1:]))
        self.disk_events[-1]["verify_rc"] = r.returncode
        if r.returncode != 0:
            self.finding("data dir of %s does not verify after fsync EIO: %s" % (m.name, r.stdout.strip()))
        if role == "follower" and bad:
            self.finding("%d probes failed while follower %s stopped on EIO" % (bad, m.name))
        self.start(m)
        self.wait_caught_up(m)

    def run_disk(self):
        self.setup()
        for m in self.members:
            self.start(m)
        if not self.wait_leader(30):
            raise RuntimeError("no leader within 30 s")
        client, history, summary = self.start_client()
        self.probes = [0]
        time.sleep(3)
        ld = self.leader()
        follower = next(m for m in self.members if m is not ld)
        self.disk_full(follower, "follower")
        ld = self.wait_leader(10)
        self.disk_full(ld, "leader")
        ld = self.wait_leader(10)
        self.fsync_eio(ld, "leader")
        ld = self.wait_leader(10)
        self.fsync_eio(next(m for m in self.members if m is not ld), "follower")
        self.finish_client = True
        log("scenario done; waiting for the client's final reads")
        client.wait()
        return self.report(history, summary, client.returncode)

    def elections(self):
        terms = set()
        for m in self.members:
            try:
                with open(m.logf) as f:
                    for line in f:
                        g = re.search(r"elected leader \S+ at term (\d+)", line)
                        if g:
                            terms.add(int(g.group(1)))
            except OSError:
                pass
        return len(terms)

    def report(self, history, summary, client_rc):
        r = sh(self.check, history, check=False)
        check_out = r.stdout.strip()
        verdict = {0: "linearizable", 1: "not linearizable", 3: "no verdict"}.get(r.returncode, "check failed")
        try:
            with open(summary) as f:
                cs = json.load(f)
        except Exception:
            cs = {}
        g = re.search(r"longest time with no op completing: (\d+)", check_out)
        longest = int(g.group(1)) / 1e9 if g else None
        res = {"verdict": verdict, "ops_ok": cs.get("ops_ok"), "ops_indeterminate": cs.get("ops_indeterminate"),
               "acked_unique_writes": cs.get("acked_unique_writes"), "lost_acked_writes": cs.get("lost_acked_writes"),
               "faults": self.faults, "elections": self.elections(), "longest_unavailability_s": longest,
               "findings": self.findings, "disk_events": self.disk_events, "members": len(self.members), "duration_s": self.a.duration,
               "serializable_reads": self.a.serializable, "loadavg": os.getloadavg(), "dir": self.dir,
               "data_fs": self.members[0].fs_kind}
        print(check_out.splitlines()[0] if check_out else "(balsa-check printed nothing)")
        if r.returncode == 1:
            print("\n".join(check_out.splitlines()[1:40]))
        print(json.dumps(res, indent=1))
        if self.a.result:
            with open(self.a.result, "w") as f:
                json.dump(res, f, indent=1)
        ok = (r.returncode == 0 and client_rc == 0 and cs.get("lost_acked_writes") == 0 and not self.findings)
        if self.a.expect_violation:
            # The negative control: serializable reads under partitions must be caught.
            if r.returncode == 1:
                log("negative control: history reported NOT linearizable, as it must be")
                return 0
            log("negative control FAILED: the checker did not catch serializable reads (%s)" % verdict)
            return 1
        if not ok:
            self.a.keep = True
            log("FAILED (kept %s): verdict=%s client_rc=%s lost=%s findings=%d" %
                (self.dir, verdict, client_rc, cs.get("lost_acked_writes"), len(self.findings)))
            return 1
        log("PASS")
        return 0

    def shutdown(self):
        for m in self.members:
            try:
                self.kill(m)
            except Exception as e:
                print("cleanup: kill %s: %s" % (m.name, e), file=sys.stderr)
        self.clean.run()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=120, help="seconds of client load")
    p.add_argument("--nemesis", default="partition,kill,pause,clock,disk")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--keys", type=int, default=24)
    p.add_argument("--interval", type=float, default=2.0, help="scale of the gaps between and lengths of faults (s)")
    p.add_argument("--quiet-tail", type=int, default=5, help="seconds without new faults before the load ends")
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--snapshot-count", type=int, default=2000)
    p.add_argument("--timeout-ms", type=int, default=1500)
    p.add_argument("--disk-mb", type=int, default=400, help="size of each member's data filesystem")
    p.add_argument("--max-clock-drift", type=float, default=0.05, help="clock rate skew bound (0.05 = 5%%)")
    p.add_argument("--ack-page", type=int, default=10000, help="keys per page of the final range over ack/")
    p.add_argument("--serializable", action="store_true", help="clients read serializably (negative control)")
    p.add_argument("--expect-violation", action="store_true", help="succeed only if the history is NOT linearizable")
    p.add_argument("--scenario", choices=["nemesis", "disk"], default="nemesis",
                   help="disk: a fixed sequence instead of the random nemesis: a follower's disk fills, then the "
                        "leader's, then fsync fails with EIO on the leader and on a follower; each member must stop "
                        "cleanly, keep its data dir verifiable, restart and catch up, and the cluster serve meanwhile")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--workdir", default="/tmp")
    p.add_argument("--result", help="write the figures as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, history)")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("chaos: needs root (network namespaces, mounts); skipping")
        return 77
    for tool in ("ip", "iptables", "mkfs.ext4", "fallocate", "curl"):
        if not shutil.which(tool):
            print("chaos: %s not installed (scripts/install-deps.sh); skipping" % tool)
            return 77
    if "clock" in a.nemesis and not os.path.exists("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"):
        print("chaos: libfaketime not installed (Debian faketime); skipping")
        return 77
    log("seed %d" % a.seed)
    h = Harness(a)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        return h.run_disk() if a.scenario == "disk" else h.run()
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception as e:
        a.keep = True
        log("harness error: %s (kept %s)" % (e, h.dir))
        return 1
    finally:
        h.shutdown()


if __name__ == "__main__":
    sys.exit(main())
