"""/diagnostics the way diagnostic_updater does them: one status per task (ingest, windows,
model, and the age of each published output), named "<node>: <task>", hardware_id the device,
and levels from what happened since the last report — a drop ten minutes ago must not keep a
status at WARN forever, and an OK status never says "dropping".

The first status, "<node>: perception", keeps the running totals for tools that add them up
(``event-fm eval``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
#: skip reasons that are part of the formats, not faults (EVT3 padding/OTHERS words, words
#: before the first time high of a stream that is joined mid-way)
BY_DESIGN = ("ignored", "before_time_sync")


def _status(name: str, hardware_id: str, level: int, message: str,
            values: dict) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_text(v))
                                    for k, v in sorted(values.items())])


def _text(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class DiagnosticsReporter:
    """Turns the engine's cumulative counters into per-task statuses over the last interval."""

    def __init__(self, node_name: str, max_age_ms: float) -> None:
        self.node_name = node_name
        self.max_age_ms = float(max_age_ms)
        self._previous: dict | None = None
        self._previous_time: float | None = None

    def _delta(self, d: dict, key: str) -> float:
        before = (self._previous or {}).get(key, 0) or 0
        return (d.get(key, 0) or 0) - before

    def statuses(self, d: dict, now_s: float, hardware_id: str,
                 output_ages_ms: dict[str, list[float]], input_age_ms: float | None,
                 subscribed: Iterable[str]) -> list[DiagnosticStatus]:
        """``d``: engine.diagnostics() plus the node's counters; ``output_ages_ms``: per output,
        now minus stamp at each publish in the interval; ``input_age_ms``: the newest event
        packet's age on arrival (what waits in the DDS queue shows here)."""
        dt = max(1e-6, now_s - self._previous_time) if self._previous_time is not None else None
        malformed = {k: v for k, v in d.get("malformed", {}).items() if k not in BY_DESIGN}
        previous_malformed = (self._previous or {}).get("malformed", {})
        new_malformed = {k: v - previous_malformed.get(k, 0) for k, v in malformed.items()
                         if v - previous_malformed.get(k, 0) > 0}
        name = self.node_name
        out = [self._totals(d, hardware_id, new_malformed)]

        events = self._delta(d, "events")
        ingest = {"event_rate_ev_s": events / dt if dt else 0.0,
                  "input_age_ms": input_age_ms if input_age_ms is not None
                  else "n/a (no live input: replayed stamps)",
                  **{f"{k}_recent": int(self._delta(d, k)) for k in (
                      "seq_gaps", "seq_backwards", "sensor_resets", "packets_quarantined")},
                  **{f"malformed_{k}_recent": v for k, v in new_malformed.items()},
                  **{f"by_design_{k}": d.get("malformed", {}).get(k, 0) for k in BY_DESIGN}}
        problems = [k for k in ("seq_gaps_recent", "packets_quarantined_recent",
                                "sensor_resets_recent") if ingest[k]] + \
            [f"malformed {k}" for k in new_malformed]
        level, message = OK, "ok"
        if input_age_ms is not None and input_age_ms > self.max_age_ms:
            level, message = WARN, f"input arrives {input_age_ms:.0f} ms late (DDS backlog)"
        elif problems:
            level, message = WARN, "recent: " + ", ".join(p.replace("_recent", "")
                                                          for p in problems)
        elif dt and events == 0:
            level, message = WARN, "no events"
        out.append(_status(f"{name}: ingest", hardware_id, level, message, ingest))

        windows = {k: int(self._delta(d, k)) for k in (
            "windows_due", "windows_processed", "windows_dropped_behind",
            "windows_dropped_stale", "windows_skipped_gap", "window_errors")}
        if dt:
            windows["processed_per_s"] = windows["windows_processed"] / dt
        dropped = windows["windows_dropped_behind"] + windows["windows_dropped_stale"]
        level, message = OK, "ok"
        if windows["window_errors"]:
            level, message = ERROR, f"{windows['window_errors']} windows failed"
        elif dropped:
            level, message = WARN, (f"dropped {windows['windows_dropped_behind']} behind, "
                                    f"{windows['windows_dropped_stale']} stale")
        out.append(_status(f"{name}: windows", hardware_id, level, message, windows))

        processed = max(1, windows["windows_processed"])
        model = {k: self._delta(d, k) / processed * 1e3 for k in d
                 if k.startswith("latency_sum_") and isinstance(d[k], float)}
        model = {k.replace("latency_sum_", "latency_") + "_ms": v for k, v in model.items()}
        model["intrinsics_assumed"] = d.get("intrinsics_assumed", False)
        out.append(_status(f"{name}: model", hardware_id, OK,
                           "intrinsics assumed (no camera_info)" if model["intrinsics_assumed"]
                           else "ok", model))

        for output in sorted(set(output_ages_ms) | set(subscribed)):
            ages = output_ages_ms.get(output, [])
            values = {"published_recent": len(ages)}
            if ages:
                values.update(age_p50_ms=float(np.median(ages)), age_max_ms=float(max(ages)))
                late = max(ages) > self.max_age_ms
                level = WARN if late else OK  # levels are bytes: b"\x00" is truthy
                message = f"outputs {max(ages):.0f} ms old" if late else "ok"
            else:
                level, message = OK, "nothing published recently"
            out.append(_status(f"{name}: output {output}", hardware_id, level, message, values))

        self._previous, self._previous_time = {**d, "malformed": dict(malformed)}, now_s
        return out

    def _totals(self, d: dict, hardware_id: str, new_malformed: dict) -> DiagnosticStatus:
        flat = {k: v for k, v in d.items() if k != "malformed" and
                not k.startswith("latency_sum_")}
        for reason, count in d.get("malformed", {}).items():
            flat[f"malformed_{reason}"] = count
        recent = {k: int(self._delta(d, k)) for k in ("windows_dropped_behind",
                                                      "windows_dropped_stale", "window_errors")}
        faults = {k: v for k, v in recent.items() if v}
        if new_malformed:
            faults["malformed input"] = sum(new_malformed.values())
        level = WARN if faults else OK
        message = ("recent: " + ", ".join(f"{k} {v}" for k, v in faults.items())) if faults \
            else "ok"
        return _status(f"{self.node_name}: perception", hardware_id, level, message, flat)
