"""Fault injection and soak against a live perception_node over DDS (issue 17).

    scripts/with_env.sh .venv/bin/python benchmarks/soak.py [--seconds 60] [--rate-mev 50]

Starts perception_node as ``ros2 run`` would (its own process, its own private DDS domain),
drives it with EVT3 EventPackets as metavision_driver publishes them (best effort, stamps on
host time, 1280x720), injects the faults of the issue one case at a time with clean traffic in
between, then loads it at ``--rate-mev`` for ``--seconds``. Prints one table (case, expected,
observed, counted) and the load figures: output age p50/p99, RSS peak and after, drops by
reason. Writes ``soak.json`` and ``soak.png`` (RSS and output age over time) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 720
TOPIC = "/soak/events"
NODE = "event_fm_perception"
TIME_HIGH = 0x8
#: the load's pre-encoded block spans this many EVT3 TIME_HIGH units (4096 us each); looping it
#: shifts every TIME_HIGH word by the same amount, so the stream stays continuous
BLOCK_UNITS = 256


def rss_kb(pid: int) -> int:
    """Resident memory of a process in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            return int(value.split()[0])
    return 0


@dataclass
class Listener:
    """What the node says: its diagnostics totals, and the age of each depth output."""

    totals: dict = field(default_factory=dict)
    ages_ms: list = field(default_factory=list)  # (wall time, age) per depth image
    statuses: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_diagnostics(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                self.statuses[status.name] = (status.level, status.message)
                if status.name.endswith(": perception"):
                    self.totals = {kv.key: kv.value for kv in status.values}

    def on_depth(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        now = time.time_ns()
        with self.lock:
            self.ages_ms.append((time.monotonic(), (now - stamp) / 1e6))

    def counter(self, key: str) -> int:
        with self.lock:
            try:
                return int(float(self.totals.get(key, 0)))
            except ValueError:
                return 0


class Driver:
    """Publishes EventPackets on host-time stamps from one continuous sensor clock."""

    def __init__(self, node, publisher, seed: int = 0) -> None:
        from event_fm.io.evt3_encoder import Evt3Encoder

        self.node, self.pub = node, publisher
        self.rng = np.random.default_rng(seed)
        self.encoder = Evt3Encoder()
        self.sensor_us = 1_000_000
        self.seq = 0
        # the sensor's clock runs with the host's, as a camera's does: nothing the harness
        # does between cases may look like time jumping (that is a case of its own)
        self._origin_ns = time.monotonic_ns()
        self._back_us = 0
        self._block: list | None = None

    def catch_up(self) -> None:
        """Sensor time to now: the sensor was quiet meanwhile (no events, same clock)."""
        now_us = 1_000_000 + (time.monotonic_ns() - self._origin_ns) // 1000 - self._back_us
        self.sensor_us = max(self.sensor_us, now_us)

    def message(self, payload: bytes, width=WIDTH, height=HEIGHT, encoding="evt3",
                seq: int | None = None):
        from event_camera_msgs.msg import EventPacket

        msg = EventPacket()
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = now // 10**9, now % 10**9
        msg.header.frame_id = "event_camera"
        msg.width, msg.height, msg.encoding = width, height, encoding
        msg.seq = self.seq if seq is None else seq
        msg.time_base = 0
        msg.events = payload
        return msg

    def events(self, n: int, t0_us: int, span_us: int) -> np.ndarray:
        from event_fm.io.events import EVENT_DTYPE

        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = np.sort(t0_us + self.rng.integers(0, span_us, n)) * 1000
        ev["x"], ev["y"] = self.rng.integers(0, WIDTH, n), self.rng.integers(0, HEIGHT, n)
        ev["p"] = self.rng.integers(0, 2, n)
        return ev

    def clean(self, seconds: float, packet_ms: float = 1.0, per_packet: int = 300) -> None:
        """Steady, light traffic at real time."""
        self.catch_up()
        start = time.monotonic()
        n = int(seconds * 1000 / packet_ms)
        for i in range(n):
            span = int(packet_ms * 1000)
            payload = self.encoder.encode(self.events(per_packet, self.sensor_us, span))
            self.pub.publish(self.message(payload))
            self.sensor_us += span
            self.seq += 1
            delay = start + (i + 1) * packet_ms / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def garbage(self, count: int, seconds: float, size: int = 8000) -> None:
        """Random payloads, with plausible stamps and seq, between clean packets."""
        for _ in range(count):
            self.pub.publish(self.message(self.rng.integers(0, 256, size, np.uint8).tobytes()))
            self.seq += 1
            self.clean(seconds / count)

    def restart(self, back_ms: float) -> None:
        """The driver restarts with sensor time ``back_ms`` earlier (a new encoder)."""
        from event_fm.io.evt3_encoder import Evt3Encoder

        self.encoder = Evt3Encoder()
        self.catch_up()
        self._back_us += int(back_ms * 1000)
        self.sensor_us -= int(back_ms * 1000)

    def prepare_load(self, rate_mev: float, packet_ms: float) -> None:
        """One block of 256 TIME_HIGH units (~1 s) at ``rate_mev``, encoded once (before any
        traffic: encoding takes seconds)."""
        from event_fm.io.evt3_encoder import Evt3Encoder

        block_us = BLOCK_UNITS * 4096
        per_packet_us = int(packet_ms * 1000)
        per_packet = int(rate_mev * per_packet_us)
        encoder, packets = Evt3Encoder(), []
        for i in tqdm(range(block_us // per_packet_us), desc="encoding the load block"):
            words = np.frombuffer(encoder.encode(self.events(per_packet, i * per_packet_us,
                                                             per_packet_us)), "<u2").copy()
            packets.append((words, np.flatnonzero((words >> 12) == TIME_HIGH)))
        self._block = [packets, per_packet_us, per_packet, block_us]

    def load(self, seconds: float, progress: tqdm, sample) -> dict:
        """The prepared block for ``seconds``, looped with its TIME_HIGH words shifted so the
        stream stays continuous; returns what was achieved."""
        from event_fm.io.evt3_encoder import Evt3Encoder

        packets, per_packet_us, per_packet, block_us = self._block
        self.catch_up()
        start_units = -(-self.sensor_us // 4096)  # the next TIME_HIGH boundary
        sent_bytes = sent = 0
        start = time.monotonic()
        loop = 0
        while time.monotonic() - start < seconds:
            shift = (start_units + loop * BLOCK_UNITS) & 0xFFF
            for words, highs in packets:
                if time.monotonic() - start >= seconds:
                    break
                out = words.copy()
                out[highs] = (TIME_HIGH << 12) | ((out[highs] & 0xFFF) + shift) & 0xFFF
                payload = out.tobytes()
                self.pub.publish(self.message(payload))
                self.seq += 1
                sent += 1
                sent_bytes += len(payload)
                due = start + sent * per_packet_us / 1e6
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if sent % 50 == 0:
                    progress.n = min(seconds, time.monotonic() - start)
                    progress.refresh()
                    sample()
            loop += 1
        elapsed = time.monotonic() - start
        self.sensor_us = start_units * 4096 + sent * per_packet_us
        self.encoder = Evt3Encoder()
        return {"packets": sent, "packet_kb": sent_bytes / max(1, sent) / 1e3,
                "achieved_mev_s": sent * per_packet / elapsed / 1e6, "rate_mev": per_packet /
                per_packet_us,
                "pace_s_per_s": (sent * per_packet_us / 1e6) / elapsed}


def start_node(domain: int, log_path: Path, qos_depth: int) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    args = [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
            "-r", f"events:={TOPIC}", "-p", "device:=cpu", "-p", "heads:=[depth]",
            "-p", "diagnostics_period_s:=0.5", "-p", "output_rate_hz:=20.0",
            "-p", f"event_qos_depth:={qos_depth}"]
    return subprocess.Popen(args, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load")
    parser.add_argument("--rate-mev", type=float, default=50.0, help="load event rate (Mev/s)")
    parser.add_argument("--packet-ms", type=float, default=4.0,
                        help="packet duration under load (4 ms at 50 Mev/s: ~0.8 MB packets)")
    parser.add_argument("--event-qos-depth", type=int, default=200,
                        help="the node's event_qos_depth (its DDS history holds this many "
                        "packets: with 0.8 MB packets, the largest term of the memory bound)")
    parser.add_argument("--domain", type=int, default=None, help="ROS_DOMAIN_ID (default: "
                        "a private one)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "soak"))
    args = parser.parse_args()
    domain = args.domain if args.domain is not None else 100 + os.getpid() % 100
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    proc = start_node(domain, out / "node.log", args.event_qos_depth)
    rclpy.init()
    node = rclpy.create_node("event_fm_soak_driver")
    listener = Listener()
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(EventPacket, TOPIC, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", listener.on_diagnostics, 50)
    node.create_subscription(Image, f"/{NODE}/depth", listener.on_depth, 10)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [rclpy.spin_once(node, timeout_sec=0.05)
                                               for _ in iter(stop.is_set, True)], daemon=True)
    spinner.start()
    rows, load_report = [], {}
    try:
        deadline = time.monotonic() + 120
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"perception_node did not subscribe; see {out / 'node.log'}")
            time.sleep(0.2)
        driver = Driver(node, pub)
        driver.prepare_load(args.rate_mev, args.packet_ms)
        driver.clean(5.0)  # warm up: clock estimate, first windows

        def case(name: str, expected: str, keys: list[str], run, check) -> None:
            keys = [*keys, "windows_due"]
            before = {k: listener.counter(k) for k in keys}
            started = time.monotonic()
            ages_from = len(listener.ages_ms)
            rss_before = rss_kb(proc.pid)
            run()
            driver.clean(3.2)  # the node settles; two more diagnostics periods
            delta = {k: listener.counter(k) - before[k] for k in keys}
            # windows a 20 Hz schedule makes in this time (phantom windows would be far more)
            observed_due = delta.pop("windows_due")
            plausible_due = 20.0 * (time.monotonic() - started) * 1.2 + 5
            ages = [a for _, a in listener.ages_ms[ages_from:]]
            observed = {"windows_due": observed_due, "plausible_due": int(plausible_due),
                        "max_output_age_ms": round(max(ages), 1) if ages else None,
                        "rss_growth_mb": round((rss_kb(proc.pid) - rss_before) / 1e3, 1)}
            ok = check(delta, observed)
            rows.append({"case": name, "expected": expected, "observed": observed,
                         "counted": {k: v for k, v in delta.items()}, "ok": bool(ok)})
            print(f"  {'ok ' if ok else 'BAD'} {name}: {delta} {observed}", flush=True)

        def late(o: dict) -> bool:  # outputs keep coming, none from a future clock
            return o["max_output_age_ms"] is not None and o["max_output_age_ms"] < 2000

        print("fault cases:", flush=True)
        case("1 random EVT3 payload", "quarantined 1, no reset, no phantom windows, no future "
             "stamp", ["packets_quarantined", "sensor_resets", "windows_dropped_behind"],
             lambda: driver.garbage(1, 0.1),
             lambda d, o: d["packets_quarantined"] == 1 and d["sensor_resets"] == 0
             and o["windows_due"] <= o["plausible_due"] and late(o))
        case("300 random payloads in 3 s", "quarantined 300, no phantom windows, outputs on "
             "time, RSS flat", ["packets_quarantined", "sensor_resets", "windows_dropped_behind"],
             lambda: driver.garbage(300, 3.0),
             lambda d, o: d["packets_quarantined"] == 300 and d["sensor_resets"] == 0
             and o["windows_due"] <= o["plausible_due"] and late(o) and o["rss_growth_mb"] < 300)
        case("time back 100 ms (driver restart)", "one sensor reset, no phantom windows",
             ["sensor_resets", "windows_dropped_behind", "windows_skipped_gap"],
             lambda: driver.restart(100.0),
             lambda d, o: d["sensor_resets"] == 1 and o["windows_due"] <= o["plausible_due"])
        case("seq goes back", "seq_backwards 1", ["seq_backwards"],
             lambda: (pub.publish(driver.message(driver.encoder.encode(driver.events(
                 300, driver.sensor_us, 1000)), seq=driver.seq - 50)),
                 setattr(driver, "sensor_us", driver.sensor_us + 1000)),
             lambda d, o: d["seq_backwards"] >= 1)
        case("header 100000x100000", "rejected and counted, no allocation",
             ["malformed_implausible_geometry"],
             lambda: [(pub.publish(driver.message(b"\x00" * 64, 100_000, 100_000)),
                       setattr(driver, "seq", driver.seq + 1), time.sleep(0.05))
                      for _ in range(5)],
             lambda d, o: d["malformed_implausible_geometry"] == 5 and o["rss_growth_mb"] < 300)
        log_before = (out / "node.log").read_text().count("encoding")
        case("300 unknown encodings in 3 s", "counted 300, logged once per interval",
             ["malformed_unknown_encoding"],
             lambda: [(pub.publish(driver.message(b"\x00" * 64, encoding="evt9")),
                       setattr(driver, "seq", driver.seq + 1), time.sleep(0.01))
                      for _ in range(300)],
             lambda d, o: d["malformed_unknown_encoding"] == 300)
        lines = (out / "node.log").read_text().count("encoding") - log_before
        rows[-1]["observed"]["log_lines"] = lines
        rows[-1]["ok"] = rows[-1]["ok"] and lines <= 5

        print(f"load: {args.rate_mev:g} Mev/s for {args.seconds:g} s", flush=True)
        rss_idle = rss_kb(proc.pid)
        trace = []  # (t, rss MB)
        t0 = time.monotonic()
        ages_from = len(listener.ages_ms)
        keys = ["windows_dropped_behind", "windows_dropped_stale", "windows_processed",
                "seq_gaps", "packets_quarantined", "buffer_evicted", "windows_skipped_gap"]
        before = {k: listener.counter(k) for k in keys}
        def sample() -> None:
            trace.append((time.monotonic() - t0, rss_kb(proc.pid) / 1e3))

        with tqdm(total=args.seconds, desc="load", unit="s") as progress:
            achieved = driver.load(args.seconds, progress, sample)
        t_end = time.monotonic() - t0
        driver.clean(10.0)  # the load ends; light traffic continues
        for _ in range(10):
            sample()
            time.sleep(0.5)
        ages = np.array([a for t, a in listener.ages_ms[ages_from:] if t - t0 <= t_end + 5])
        rss_peak = max(r for _, r in trace)
        load_report = {
            **achieved, "seconds": args.seconds,
            "output_age_p50_ms": float(np.percentile(ages, 50)) if len(ages) else None,
            "output_age_p99_ms": float(np.percentile(ages, 99)) if len(ages) else None,
            "outputs": int(len(ages)), "rss_idle_mb": rss_idle / 1e3, "rss_peak_mb": rss_peak,
            "rss_after_mb": trace[-1][1],
            "drops": {k: listener.counter(k) - before[k] for k in keys},
            "statuses_after": {k: v[1] for k, v in listener.statuses.items()}}
        plot(out / "soak.png", trace, [(t - t0, a) for t, a in listener.ages_ms[ages_from:]],
             t_end)
    finally:
        stop.set()
        spinner.join(timeout=5)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        node.destroy_node()
        rclpy.shutdown()

    print("\n| case | expected | observed | counted | |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['expected']} | {r['observed']} | {r['counted']} | "
              f"{'ok' if r['ok'] else 'FAILED'} |")
    if load_report:
        lr = load_report
        print(f"\nload {lr['achieved_mev_s']:.1f} Mev/s achieved of {lr['rate_mev']:g} "
              f"({lr['packet_kb']:.0f} kB packets, publisher pace {lr['pace_s_per_s']:.2f}x), "
              f"{lr['seconds']:g} s at {WIDTH}x{HEIGHT}")
        print(f"output age p50 {lr['output_age_p50_ms']:.0f} ms, p99 "
              f"{lr['output_age_p99_ms']:.0f} ms over {lr['outputs']} outputs")
        print(f"RSS idle {lr['rss_idle_mb']:.0f} MB, peak {lr['rss_peak_mb']:.0f} MB, "
              f"10 s after {lr['rss_after_mb']:.0f} MB")
        print(f"drops: {lr['drops']}")
        print(f"statuses after: {lr['statuses_after']}")
    (out / "soak.json").write_text(json.dumps({"cases": rows, "load": load_report}, indent=2))
    print(f"wrote {out / 'soak.json'} and {out / 'soak.png'}")
    return 0 if all(r["ok"] for r in rows) else 1


def plot(path: Path, rss: list, ages: list, t_end: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    if rss:
        a.plot(*zip(*rss, strict=True))
    a.set_ylabel("RSS (MB)")
    a.axvline(t_end, color="k", ls="--", label="load ends")
    a.legend()
    if ages:
        b.plot(*zip(*ages, strict=True), ".", ms=3)
    b.set_ylabel("depth output age (ms)")
    b.set_xlabel("time since the load started (s)")
    b.axvline(t_end, color="k", ls="--")
    fig.suptitle("perception_node under load (soak.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
