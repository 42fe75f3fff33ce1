"""max_filter: the shifted-maxima replacement of stride-1 max_pool2d (issue 19)."""

import pytest
import torch
import torch.nn.functional as F

from event_fm.common.filters import max_filter


@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (4, 9), (1, 1, 2, 3)])
def test_equals_stride_one_max_pool(size, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(size))
    pooled = F.max_pool2d(x.reshape(-1, 1, *shape[-2:]), size, stride=1,
                          padding=size // 2).reshape(shape)
    assert torch.equal(max_filter(x, size), pooled)


def test_peaks_survive_and_spread():
    x = torch.zeros(1, 9, 9)
    x[0, 4, 4] = 1.0
    out = max_filter(x, 5)
    assert out[0, 2:7, 2:7].eq(1).all() and out.sum() == 25


def test_rejects_even_sizes_and_integer_tensors():
    with pytest.raises(ValueError, match="odd size"):
        max_filter(torch.zeros(4, 4), 4)
    with pytest.raises(TypeError, match="floating-point"):
        max_filter(torch.zeros(4, 4, dtype=torch.bool), 3)
