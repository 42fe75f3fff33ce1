"""Nothing the project reads can execute code: every torch.load passes weights_only=True (the
default only became safe in torch 2.6, and setup.py allows older), and a frame cache holding a
pickled object is refused instead of run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from training.forecast.data import load_split

REPO = Path(__file__).resolve().parents[1]


def _torch_load_calls():
    for path in [*REPO.glob("event_fm/**/*.py"), *REPO.glob("training/**/*.py"),
                 *REPO.glob("benchmarks/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and getattr(node.func.value, "id", "") == "torch"):
                yield path, node


def test_every_torch_load_refuses_pickled_code():
    calls = list(_torch_load_calls())
    assert calls, "expected the frame cache's torch.load"
    for path, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, \
            f"{path.relative_to(REPO)}:{call.lineno} torch.load without weights_only=True"


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/event_fm_unpickled_marker"),))


def test_a_frame_cache_with_a_pickled_object_is_refused(tmp_path):
    marker = Path("/tmp/event_fm_unpickled_marker")
    marker.unlink(missing_ok=True)
    (tmp_path / "train").mkdir()
    torch.save({"name": "x", "frames": _Payload(), "width": 1, "height": 1},
               tmp_path / "train" / "evil.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|global"):
        load_split(tmp_path, "train")
    assert not marker.exists()
