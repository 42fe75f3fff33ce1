"""``event-fm export CHECKPOINT OUT.onnx``: the event encoder + heads as one ONNX graph.

The .onnx file is a checkpoint of its own: give it wherever a checkpoint goes (``--checkpoint``,
perception_node's ``checkpoint`` parameter) and ONNX Runtime runs it.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="event_fm checkpoint directory (e.g. models/default)")
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=None,
                        help="ONNX opset (default 17, which TensorRT 8.6+ parses)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip comparing ONNX Runtime's outputs with PyTorch's")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from event_fm.models.checkpoint import load_model, read_document
    from event_fm.models.onnx_model import ONNX_OPSET, export_onnx, load_onnx_model

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the output must end in .onnx (the suffix selects the runtime)")
    model = load_model(args.checkpoint)
    export_onnx(model, out, read_document(args.checkpoint), args.opset or ONNX_OPSET)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {args.opset or ONNX_OPSET})")
    if args.no_check:
        return 0
    onnx_model = load_onnx_model(out)
    generator = torch.Generator().manual_seed(0)
    height, width = model.img_size
    shape = (2, model.config.num_bins, height, width)
    voxels = torch.randn(shape, generator=generator) * (
        torch.rand(shape, generator=generator) < 0.05)
    with torch.inference_mode():
        reference = model.forward_events(voxels)
        outputs = onnx_model.forward_events(voxels)
    worst = max(float((reference[k] - v).abs().max() / reference[k].abs().max().clamp(min=1e-6))
                for k, v in outputs.items())
    print(f"ONNX Runtime vs PyTorch on a random sparse window: {len(outputs)} outputs, largest "
          f"difference {worst:.1e} of the output's range")
    if worst > 1e-3:
        print("the outputs differ: do not deploy this file")
        return 1
    return 0
