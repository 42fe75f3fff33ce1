"""perception_node in a process of its own, as ``ros2 launch`` runs it on a robot.

``event-fm eval`` used to spin the node, the bag player and the output collector in one Python
process: the player's publishing and the collector's copies held the GIL the node's worker
needed (a forward took 100-150 ms inside that process against 11 ms alone), so a full-rate
replay dropped most windows. A separate process gives the node its own interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from event_fm.nodes import perception_params
from event_fm.nodes.graph import typed_values

NODE_NAME = "event_fm_perception"
STOP_GRACE_S = 20.0


class NodeProcessError(RuntimeError):
    """The node process exited before it was asked to; the message carries its log's tail."""


class PerceptionProcess:
    """Starts ``python -m event_fm.nodes.perception_node`` with ``parameters`` (a params YAML in
    ``work_dir``), its output in ``work_dir/perception_node.log``; stops it by its pid (SIGINT,
    then SIGKILL after a grace period) on exit."""

    def __init__(self, parameters: dict[str, Any], work_dir: str | Path) -> None:
        self.work_dir = Path(work_dir)
        self.parameters = parameters
        self.log_path = self.work_dir / "perception_node.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> PerceptionProcess:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        params_file = self.work_dir / "perception_params.yaml"
        values = typed_values(self.parameters, perception_params.PARAMS)
        params_file.write_text(yaml.safe_dump({NODE_NAME: {"ros__parameters": values}},
                                              sort_keys=True))
        cmd = [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
               "--params-file", str(params_file)]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ))
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def check_alive(self) -> None:
        """Raises NodeProcessError with the log's tail if the node has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise NodeProcessError(f"perception_node exited with code {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        """Asks the node to deactivate and exit (SIGINT, as Ctrl-C in a launch); returns its
        exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            deadline = time.monotonic() + STOP_GRACE_S
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
