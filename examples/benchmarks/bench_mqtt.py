"""Sustained publish rate and end-to-end latency (publish_result → subscriber) on loopback, through
the durable outbox, against a mosquitto this script starts. Prints numbers; not a test.

    python examples/benchmarks/bench_mqtt.py [--messages 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from mqtt_helpers import Broker, Subscriber  # noqa: E402

from edgekit.mqtt import MqttSettings, Publisher  # noqa: E402
from edgekit.results import Detection, DetectionResult  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--rate", type=float, default=50.0, help="paced phase: messages per second")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        sub = Subscriber(broker.port, "edgekit/bench/detections")
        time.sleep(0.5)
        result = DetectionResult("frame.jpg", 1920, 1080, tuple(
            Detection("person", 0, 0.9, (10.0 * i, 20.0, 30.0, 40.0)) for i in range(3)))
        sent_at: dict[str, float] = {}
        settings = MqttSettings(host="127.0.0.1", port=broker.port, device_id="bench", outbox=f"{tmp}/outbox.db")
        with Publisher(settings, required=True) as pub:
            start = time.perf_counter()
            for _ in range(args.messages):
                sent_at[pub.publish_result(result, "model.tflite")] = time.perf_counter()
            queued = time.perf_counter() - start
            pub.flush(120)
            acked = time.perf_counter() - start
            sub.wait_for(lambda s: len(s.timed) >= args.messages, 60)
            burst = len(sub.timed)
            paced: dict[str, float] = {}
            for _ in range(int(args.rate * 10)):  # ten seconds at --rate: latency without a backlog
                paced[pub.publish_result(result, "model.tflite")] = time.perf_counter()
                time.sleep(1 / args.rate)
            pub.flush(30)
        sub.wait_for(lambda s: len(s.timed) >= burst + len(paced), 30)
        with sub.lock:
            received = [(json.loads(payload)["event_id"], t) for _, payload, _, t in sub.timed]
        latencies = sorted((t - paced[e]) * 1000 for e, t in received if e in paced)
        unique = {e for e, _ in received}
        sub.close()
        broker.stop()
    q = statistics.quantiles(latencies, n=100)
    print(f"burst: {args.messages} messages, {len(unique & set(sent_at))} distinct received, "
          f"{len(received) - len(unique)} duplicates")
    print(f"  queue into outbox:   {args.messages / queued:6.0f} msg/s")
    print(f"  broker-acknowledged: {args.messages / acked:6.0f} msg/s sustained")
    print(f"paced {args.rate:g} msg/s: latency publish_result -> subscriber p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms")


if __name__ == "__main__":
    main()
