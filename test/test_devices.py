"""One device resolver (issue 15): the same names and the same errors everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.common.devices import resolve_device


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend CUDA has two devices (no GPU is needed: nothing is allocated)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    return calls


def test_names_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("auto", "", None, "cpu", torch.device("cpu")):
        assert resolve_device(name) == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda': CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'gpu0': not a device name"):
        resolve_device("gpu0")


def test_names_with_cuda(two_gpus):
    assert resolve_device("auto") == torch.device("cuda:0")
    assert resolve_device("auto", local_rank=1) == torch.device("cuda:1")  # a DDP worker
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"'cuda:5': only 2 CUDA device\(s\)"):
        resolve_device("cuda:5")
    assert not two_gpus
    resolve_device("auto", local_rank=1, set_current=True)
    assert two_gpus == [torch.device("cuda:1")]


def test_every_call_site_uses_it():
    from event_fm.pipeline import engine
    from event_fm.representations import _inputs
    from training import runner

    assert engine.resolve_device is resolve_device and runner.resolve_device is resolve_device
    assert _inputs.parse_device is resolve_device
    cols = _inputs.Columns(*(np.zeros(1, dtype) for dtype in _inputs.NATIVE))
    assert _inputs.resolve_device(cols, None) == torch.device("cpu")  # where the events are
    assert _inputs.resolve_device(cols, "cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device name"):
        _inputs.resolve_device(cols, "tpu")
