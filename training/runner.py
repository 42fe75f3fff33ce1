"""One training loop for every stage: single process or ``torchrun`` (DDP: NCCL on GPU, gloo on
CPU), with resume after a kill, mixed precision on GPU, tqdm progress and a CSV log.

A stage supplies a :class:`Task`: the trainable module, how to turn a batch into losses, and the
dataset. The runner owns everything else, so each stage stays a page of code.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from event_fm.common.devices import resolve_device
from event_fm.common.strict_config import build_dataclass, check_keys

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    out_dir: str = "out/train"
    steps: int = 1000
    batch_size: int = 8  # global batch size (split over processes)
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    amp: bool = True  # used on CUDA only
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    device: str = "auto"

    @classmethod
    def from_dict(cls, data: dict | None, path: str = "run") -> RunConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data or {}, path)


class Task:
    """What a stage provides to the runner."""

    def trainable(self) -> torch.nn.Module:
        raise NotImplementedError

    def dataset(self):
        raise NotImplementedError

    def collate(self, samples: list) -> Any:
        return samples

    def losses(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """Must return a dict with the scalar to optimize under 'loss'."""
        raise NotImplementedError

    def on_step_start(self, step: int) -> None:
        """Hook for schedules (curricula) that depend on the step."""

    def save_final(self, out_dir: Path) -> None:
        """Write the stage's deliverable (e.g. a model checkpoint) after the last step."""


# -- distributed helpers ------------------------------------------------------------------------
def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initializes the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_lr(step: int, cfg: RunConfig) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# -- checkpoint state -----------------------------------------------------------------------------
STATE_FILE = "train_state.pt"


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
             "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32),
                         state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, module, optimizer, scheduler, step: int, extra: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step, "rng": _rng_state(),
                "extra": extra}, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    # weights_only: the training state is plain tensors and numbers, never arbitrary objects
    return torch.load(path, map_location="cpu", weights_only=True)


def _shared_state(path: Path, rank: int, world: int) -> dict | None:
    """The saved training state as rank 0 reads it, sent to every rank.

    Only rank 0 writes checkpoints, and on several nodes only its disk may hold them; the
    other ranks take its copy, so a resume works whatever the world size was or is now (the
    global batch, not the per-rank one, fixes the data order)."""
    if world == 1:
        return load_state(path) if path.exists() else None
    box = [load_state(path) if rank == 0 and path.exists() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -- the loop -------------------------------------------------------------------------------------
@dataclass
class RunResult:
    steps_done: int
    resumed_from: int
    history: list[dict] = field(default_factory=list)
    samples: int = 0  # the training set's size (reports give epochs = steps x batch / samples)


class EpochSampler(torch.utils.data.Sampler):
    """A shuffled order that depends only on (seed, epoch): a resumed run sees the same batches
    as an uninterrupted one, and under DDP rank r takes the r-th slice of every global batch,
    so N processes see exactly the global batches one process would."""

    def __init__(self, n: int, seed: int, global_batch: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch = n, seed, 0
        self.global_batch, self.rank, self.world = global_batch, rank, world
        self.per_rank = global_batch // world
        self.batches = n // global_batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        order = order[:self.batches * self.global_batch].reshape(self.batches, self.world,
                                                                  self.per_rank)
        return iter(order[:, self.rank].ravel().tolist())

    def __len__(self) -> int:
        return self.batches * self.per_rank


def _infinite(loader: DataLoader, sampler, start_epoch: int) -> Iterator[Any]:
    epoch = start_epoch
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def run(task: Task, cfg: RunConfig, stop_after: int | None = None,
        on_log: Callable[[dict], None] | None = None, title: str | None = None,
        max_minutes: float | None = None) -> RunResult:
    """Train ``task`` for ``cfg.steps`` optimizer steps, resuming from ``out_dir`` if possible.

    ``stop_after`` ends the run early after that many steps of this invocation (tests use it
    to simulate a kill at a known point). ``max_minutes`` ends it after that much wall time and
    still saves the deliverable (a budgeted run, not a kill). ``title`` names ``loss.png``,
    drawn from the whole ``log.csv`` (a resumed run included).
    """
    t_start = time.monotonic()
    out_of_time = False
    rank, world, local = init_distributed()
    device = resolve_device(cfg.device, local, set_current=True)
    seed_everything(cfg.seed + rank)
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))

    module = task.trainable().to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the task has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, cfg))
    start = 0
    state_path = out / STATE_FILE
    state = _shared_state(state_path, rank, world)
    if state is not None:
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        if rank == 0:
            _set_rng_state(state["rng"])
            log.info("resumed from step %d (%s, %d process(es))", start, state_path, world)
        else:  # rank 0's generator state is rank 0's; the others draw their own from the step
            seed_everything(cfg.seed + rank + 1_000_003 * start)
    if world > 1:
        model_ddp = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        model_ddp = module
    task.ddp_module = model_ddp  # stages call the wrapped module for the gradient sync

    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} does not split over {world} processes")
    dataset = task.dataset()
    sampler = EpochSampler(len(dataset), cfg.seed, cfg.batch_size, rank, world)
    # its own generator: creating a loader iterator must not consume the global RNG, or a
    # resumed run would draw different dropout masks than an uninterrupted one
    loader = DataLoader(dataset, batch_size=cfg.batch_size // world, sampler=sampler,
                        num_workers=cfg.num_workers, collate_fn=task.collate, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    if len(loader) == 0:
        raise ValueError(f"dataset of {len(dataset)} samples is smaller than one batch")
    batches = _infinite(loader, sampler, start_epoch=start // len(loader))
    for _ in range(start % len(loader)):  # keep the data order of an uninterrupted run
        next(batches)

    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    log_file = out / "log.csv"
    if rank == 0 and start == 0:
        log_file.unlink(missing_ok=True)  # a fresh run's log, not appended to an earlier one
    history: list[dict] = []
    bar = tqdm(total=cfg.steps, initial=start, disable=rank != 0, unit="step")
    step = start
    module.train()
    t_last = time.perf_counter()
    while step < cfg.steps:
        if stop_after is not None and step - start >= stop_after:
            break
        if max_minutes is not None and time.monotonic() - t_start > 60 * max_minutes:
            out_of_time = True
            break
        task.on_step_start(step)
        batch = next(batches)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = task.losses(batch, step)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            values = _mean_over_ranks({k: v.detach().float() for k, v in losses.items()}, world)
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
            now = time.perf_counter()
            row = {"step": step, **values, "lr": scheduler.get_last_lr()[0],
                   "grad_norm": float(grad_norm), "sec_per_step":
                   (now - t_last) / cfg.log_every}
            t_last = now
            history.append(row)
            _append_csv(log_file, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if on_log:
                on_log(row)
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_state(state_path, module, optimizer, scheduler, step, {})
        if world > 1:
            dist.barrier()
    bar.close()
    if rank == 0 and (step >= cfg.steps or out_of_time):
        if out_of_time:
            save_state(state_path, module, optimizer, scheduler, step, {})
        module.eval()
        task.save_final(out)
        full = read_log(log_file)
        if full:
            from event_fm.evaluation.plots import save_loss_curve

            save_loss_curve(out / "loss.png", full, title or out.name)
    if world > 1:
        dist.barrier()
    return RunResult(step, start, history, len(dataset))


def _mean_over_ranks(values: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    """Log the global-batch loss, not rank 0's share of it."""
    if world == 1:
        return {k: float(v) for k, v in values.items()}
    keys = sorted(values)
    stacked = torch.stack([values[k].cpu() for k in keys])
    if dist.get_backend() == "nccl":
        stacked = stacked.cuda()
    dist.all_reduce(stacked)
    return {k: float(v) / world for k, v in zip(keys, stacked.cpu(), strict=True)}


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_log(path: Path) -> list[dict]:
    """``log.csv`` as rows of floats (empty cells dropped); [] when there is no log yet."""
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def split_run_config(section: dict, out_dir: Path | str, steps: int | None = None,
                     device: str | None = None, own: Iterable[str] = (),
                     path: str = "fit") -> tuple[RunConfig, dict]:
    """A step's YAML section -> (the runner's settings, the step's own keys): one section per
    step holds both. Strict: a key that is neither a RunConfig field nor in ``own`` raises
    ConfigError naming ``path.key`` and every known key (a typo is never ignored)."""
    section = dict(section or {})
    check_keys(section, {*RunConfig.__dataclass_fields__, *own}, path)
    if steps is not None:
        section["steps"] = steps
    if device:
        section["device"] = device
    known = {k: v for k, v in section.items() if k in RunConfig.__dataclass_fields__}
    rest = {k: v for k, v in section.items() if k not in RunConfig.__dataclass_fields__}
    cfg = RunConfig.from_dict(known, path)
    cfg.out_dir = str(out_dir)
    return cfg, rest
