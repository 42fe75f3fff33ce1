"""``event-fm import realm|gep FILE... --out DIR``: a peer project's released checkpoint as an
event_fm checkpoint (REALM's encoder + heads with LoRA merged, GEP's stage-1 student), loaded
strictly: a key left over or missing is named, nothing is guessed. The directory then goes
wherever a checkpoint goes (eval, perception_node's ``checkpoint``, ``event-fm export``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="layout", metavar="LAYOUT", required=True)
    realm = sub.add_parser("realm", help="REALM's release: event encoder (peft LoRA) + heads")
    realm.add_argument("encoder", help="REALM's event encoder file (model_state_dict, peft)")
    realm.add_argument("--depth-head", default=None, help="REALM's heads/depth.pth")
    realm.add_argument("--segmentation-head", default=None, help="REALM's heads/segmentation.pth")
    realm.add_argument("--dune", default=None,
                       help="DUNE's base file: the segmentation projector and the RGB teacher")
    realm.add_argument("--lora-alpha", type=float, default=None,
                       help="LoRA alpha when the encoder file does not say (default 32)")
    gep = sub.add_parser("gep", help="GEP's stage-1 event encoder (ViT-S/14 + 4 registers)")
    gep.add_argument("student", help="GEP's stage-1 file ({'event_encoder': ...})")
    gep.add_argument("--img-size", type=int, nargs=2, default=[448, 448], metavar=("H", "W"))
    for p, default in ((realm, "dune_vitb14_448"), (gep, "dinov2_vits14_reg4")):
        p.add_argument("--out", required=True, help="checkpoint directory to write")
        p.add_argument("--preset", default=default,
                       help=f"the backbone the file holds (default {default}, the release's)")


def run(args: argparse.Namespace) -> int:
    from event_fm.models.checkpoint import save_model
    from event_fm.models.layouts import load_gep_student, load_realm_checkpoint

    if args.layout == "realm":
        model = load_realm_checkpoint(args.encoder, depth_head=args.depth_head,
                                      segmentation_head=args.segmentation_head, dune=args.dune,
                                      lora_alpha=args.lora_alpha, preset=args.preset)
    else:
        model = load_gep_student(args.student, img_size=tuple(args.img_size),
                                 preset=args.preset)
    path = save_model(model, args.out)
    heads = ", ".join(model.heads) or "no heads"
    print(f"wrote {path}: {model.config.preset} at {model.img_size[0]}x{model.img_size[1]}, "
          f"{heads}{', with its RGB teacher' if model.teacher is not None else ''}")
    return 0
