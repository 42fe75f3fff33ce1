"""The GEP steps' work with their caches: tokens (per split), fit, evaluate. Each step reads the
previous one's files from the output folder, so they run as separate commands or as one report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from event_fm.common.devices import resolve_device
from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.models import load_model
from event_fm.models.gep import GEPConfig, load_gep
from training.runner import read_log, split_run_config

from .data import WindowGroups, split_last_recordings
from .depth import DepthDecoder
from .evaluate import evaluate_set, summary_json
from .tokens import encode_split, load_tokens, save_tokens
from .train import DepthObjective, fit

log = logging.getLogger(__name__)

#: the fit section's own keys (beside the runner's)
FIT_KEYS = ("windows", "validation_recordings", "validate_every", "depth_weight",
            "depth_windows")


class GEPSession:
    """What the gep steps share: the aligned encoders, the splits, the device and the caches
    under ROOT (each step reads the previous one's files, so they also run one by one)."""

    def __init__(self, config: dict, checkpoint: Path, root: Path, device: str | None = None,
                 fit_name: str = "fit"):
        self.config, self.checkpoint, self.root = config, Path(checkpoint), Path(root)
        self.fit_name = fit_name  # ROOT/<fit_name>: variants train beside the main fit
        self.device = resolve_device(device or config.get("fit", {}).get("device", "auto"))
        data = config.get("data", {})
        self.data_root = data.get("root", "out/train/default/data")
        self.splits = {"train": data.get("train", "train"),
                       **{f"heldout_{k}": v for k, v in data.get("heldout", {}).items()}}
        if len(self.splits) < 2:
            raise ValueError("data.heldout must name at least one held-out split")

    # -- tokens --------------------------------------------------------------------------
    def token_path(self, name: str) -> Path:
        return self.root / "tokens" / f"{name}.pt"

    def _token_meta(self, split: str, max_samples: int | None) -> dict:
        weights = self.checkpoint / "model.safetensors"
        return {"checkpoint": str(self.checkpoint), "split": split, "data_root": self.data_root,
                "weights_mtime": weights.stat().st_mtime if weights.exists() else None,
                "max_samples": max_samples}

    def tokens(self, max_samples: int | None = None, force: bool = False) -> None:
        model = None
        for name, split in self.splits.items():
            path = self.token_path(name)
            meta = self._token_meta(split, max_samples)
            if not force and path.exists():
                try:
                    if torch.load(path, map_location="cpu", weights_only=True)["meta"] == meta:
                        log.info("tokens %s: cached in %s", name, path)
                        continue
                except (KeyError, RuntimeError):
                    pass
            if model is None:
                model = load_model(self.checkpoint, device=self.device)
            t0 = time.perf_counter()
            tokens = encode_split(model, ShardDataset(self.data_root, split),
                                  int(self.config.get("tokens", {}).get("batch_size", 8)),
                                  max_samples)
            save_tokens(path, tokens, meta)
            print(f"gep tokens {name}: {len(tokens['t_end'])} windows from "
                  f"{len(tokens['recording_names'])} recordings in "
                  f"{time.perf_counter() - t0:.0f} s -> {path}")

    def load(self, name: str) -> dict:
        data = load_tokens(self.token_path(name))
        if data["meta"].get("checkpoint") != str(self.checkpoint):
            raise ValueError(f"{self.token_path(name)} came from {data['meta'].get('checkpoint')}"
                             f", not {self.checkpoint}: rerun `event-fm train gep tokens`")
        return data

    # -- fit -----------------------------------------------------------------------------
    @property
    def fit_dir(self) -> Path:
        return self.root / self.fit_name

    def gep_config(self, token_dim: int) -> GEPConfig:
        return GEPConfig.from_dict({**self.config.get("model", {}), "token_dim": token_dim,
                                    "encoder_checkpoint": str(self.checkpoint)})

    def _fit_section(self, steps: int | None) -> dict:
        section = dict(self.config.get("fit", {}))
        if steps is not None:
            section["steps"] = steps
        return section

    def _fit_is_current(self, steps: int | None) -> bool:
        """A finished fit whose model and fit settings are this config's (a fit left by an
        earlier config is trained again, not reported under the new one)."""
        saved = self.fit_dir / "model" / "config.json"
        settings = self.fit_dir / "fit_section.json"
        if not (saved.exists() and settings.exists()):
            return False
        stored = json.loads(saved.read_text())["config"]
        current = self.gep_config(int(stored["token_dim"])).__dict__
        same_model = json.loads(json.dumps(current)) == stored
        return same_model and json.loads(settings.read_text()) == self._fit_section(steps)

    def fit(self, steps: int | None = None, skip_done: bool = False) -> None:
        if skip_done and self._fit_is_current(steps):
            log.info("fit: done in %s", self.fit_dir)
            return
        section = self._fit_section(steps)
        windows = int(section.get("windows", 8))
        tokens = self.load("train")
        gep_cfg = self.gep_config(int(tokens["event_cls"].shape[-1]))
        run_cfg, own = split_run_config(section, self.fit_dir, device=str(self.device),
                                        own=FIT_KEYS, path="fit")
        held = int(own.get("validation_recordings", 0))
        validation = None
        if held:
            tokens, val_tokens = split_last_recordings(tokens, held)
            validation = WindowGroups(val_tokens, gep_cfg.agg_grid)
        groups = WindowGroups(tokens, gep_cfg.agg_grid)
        depth = None
        if float(own.get("depth_weight", 0.0)) > 0:
            depth = DepthObjective(DepthDecoder(load_model(self.checkpoint, device="cpu")),
                                   float(own["depth_weight"]), int(own.get("depth_windows", 2)))
        t0 = time.perf_counter()
        result = fit(groups, gep_cfg, run_cfg, windows, validation,
                     int(own.get("validate_every", 50)), depth)
        history = read_log(self.fit_dir / "log.csv")
        summary = {"steps": result.steps_done, "resumed_from": result.resumed_from,
                   "seconds": time.perf_counter() - t0,
                   "first_loss": history[0]["loss"] if history else None,
                   "last_loss": history[-1]["loss"] if history else None,
                   "parameters": sum(p.numel() for p in load_gep(self.fit_dir / "model")
                                     .parameters()),
                   "training_recordings": len(groups.recordings)}
        if depth is not None:  # the objective's two parts, first and last logged values
            summary["depth_term"] = {
                "weight": depth.weight, "windows": depth.windows,
                **{f"{edge}_{key}": float(row[key]) for edge, row in
                   (("first", history[0]), ("last", history[-1])) if history
                   for key in ("feature_loss", "depth")}}
        calibration = self.fit_dir / "calibration.json"
        if calibration.exists():
            summary["calibration"] = json.loads(calibration.read_text())
        (self.fit_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        (self.fit_dir / "fit_section.json").write_text(json.dumps(section, indent=1))
        print(f"gep fit: {summary['steps']} steps, loss {summary['first_loss']} -> "
              f"{summary['last_loss']}; model {self.fit_dir / 'model'}")

    # -- evaluate ------------------------------------------------------------------------
    def evaluate(self) -> dict:
        section = self.config.get("evaluate", {})
        gep = load_gep(self.fit_dir / "model", device=self.device)
        eventfm = load_model(self.checkpoint, device=self.device)
        lora_b = [p for n, p in eventfm.encoder.named_parameters() if "lora_B" in n]
        report = {"checkpoint": str(self.checkpoint), "gep": str(self.fit_dir / "model"),
                  # LoRA starts with B = 0: all zeros means the student was never distilled
                  "student_distilled": bool(not lora_b or any(p.abs().sum() > 0
                                                                for p in lora_b)),
                  "config": gep.config.__dict__, "sets": {}, "examples": {},
                  "horizon_stride": int(section.get("horizon_stride", 3))}
        for name in self.splits:
            if name == "train":
                continue
            t0 = time.perf_counter()
            result = evaluate_set(gep, eventfm, self.load(name), int(section.get("context", 7)),
                                  int(section.get("horizons", 3)),
                                  int(section.get("horizon_stride", 3)),
                                  int(section.get("batch_size", 64)), keep_examples=3)
            report["examples"][name] = result.pop("_examples")
            result["seconds"] = time.perf_counter() - t0
            report["sets"][name.removeprefix("heldout_")] = result
        report["summary"] = summary_json(report["sets"])
        report["variants"] = self.variants(eventfm, section)
        probe_steps = int(section.get("probe_steps", 0))
        if probe_steps > 0:
            from .probe import run_probe

            t0 = time.perf_counter()
            report["probe"] = run_probe(
                gep, self.load("train"),
                {n.removeprefix("heldout_"): self.load(n) for n in self.splits if n != "train"},
                eventfm.encoder.backbone.grid_size(*eventfm.img_size), tuple(eventfm.img_size),
                eventfm.heads["depth"].depth_range, probe_steps, self.device)
            report["probe"]["steps"] = probe_steps
            report["probe"]["seconds"] = time.perf_counter() - t0
        fit_summary = self.fit_dir / "summary.json"
        if fit_summary.exists():
            report["fit"] = json.loads(fit_summary.read_text())
        out = self.root / "evaluate"
        out.mkdir(parents=True, exist_ok=True)
        public = {k: v for k, v in report.items() if k != "examples"}
        (out / "metrics.json").write_text(json.dumps(public, indent=1, default=str))
        return report


    def variants(self, eventfm, section: dict) -> dict:
        """Other trained transformers (``evaluate.variants``: name -> model folder, relative to
        the output folder) scored the same way at one window ahead, for the report."""
        out: dict[str, dict] = {}
        for name, folder in (section.get("variants") or {}).items():
            path = Path(folder) if Path(folder).is_absolute() else self.root / folder
            if not (path / "config.json").exists():
                log.info("variant %s: no model in %s, skipped", name, path)
                continue
            model = load_gep(path, device=self.device)
            out[name] = {}
            for split in self.splits:
                if split == "train":
                    continue
                r = evaluate_set(model, eventfm, self.load(split),
                                 int(section.get("context", 7)), 0,
                                 batch_size=int(section.get("batch_size", 64)))
                out[name][split.removeprefix("heldout_")] = {
                    "feature_mse": r["gep"]["feature_mse"],
                    "depth_mae_10m": r["gep"]["depth_mae_10m"],
                    "copy_last_feature_mse": r["copy_last"]["feature_mse"],
                    # the references at the variant's own token grid
                    "mean_last2_feature_mse": r["mean_last2"]["feature_mse"],
                    "mean_last2_depth_mae_10m": r["mean_last2"]["depth_mae_10m"]}
        return out

