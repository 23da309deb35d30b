"""/diagnostics and the "no input" warning, once a second: rates, drops, latency, device and every problem by
kind (rejected messages per topic and kind, frames without an estimate per kind), so an operator sees why a
node that runs gives nothing."""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from cleanpose_ros.engine import PoseEngine
from cleanpose_ros.inputs import TOPICS


def warn_if_silent(engine: PoseEngine) -> None:
    inputs, p = engine.inputs, engine.params
    if inputs is None:
        return
    silent_for = time.monotonic() - engine.last_sync_time
    if silent_for > p.sync_warn_after:
        counts = ", ".join(f"{t}: {inputs.received.get(t, 0)}" for t in TOPICS)
        missing = [t for t in ("rgb", "depth") if not inputs.received.get(t)]
        hint = (f"; nothing on {[engine.node.resolve_topic_name(TOPICS[t]) for t in missing]}" if missing
                else f"; stamps differ by more than sync_slop {p.sync_slop} s?")
        engine.node.get_logger().warning(
            f"no synchronised rgb/depth for {silent_for:.0f} s (received so far: {counts}){hint}",
            throttle_duration_sec=p.sync_warn_after)


def diagnostics(engine: PoseEngine, now) -> DiagnosticArray:
    status = DiagnosticStatus(name=f"{engine.node.get_fully_qualified_name()}: pose estimation",
                              hardware_id=engine.device)
    silent = time.monotonic() - engine.last_sync_time > engine.params.sync_warn_after
    status.level = DiagnosticStatus.WARN if silent else DiagnosticStatus.OK
    status.message = "no synchronised input" if silent else "running"
    latency = list(engine.latency_ms)
    values: dict[str, object] = {
        "device": engine.device,
        "frames_processed": engine.frames_processed,
        "frames_dropped_busy": engine.worker.dropped,
        "latency_ms_mean": f"{np.mean(latency):.1f}" if latency else "n/a",
        "latency_ms_max": f"{np.max(latency):.1f}" if latency else "n/a",
        "problems_total": sum(engine.problems.values()),
        "last_problem": engine.last_problem,
        "tf_backend": engine.transforms.backend if engine.transforms is not None else "off",
    }
    values.update({f"problem {k}": n for k, n in sorted(engine.problems.items())})
    if engine.inputs is not None:
        values.update(engine.inputs.stats())
    values.update({f"stage_ms_{k}": f"{v:.1f}" for k, v in engine.stage_ms.items()})
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = now
    return array
