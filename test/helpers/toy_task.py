"""A tiny regression task for exercising the training runner (not a model under test)."""

from __future__ import annotations

import torch

from training.runner import Task


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, 8) + 0.5

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class ToyTask(Task):
    def __init__(self, dropout: float = 0.1):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(16, 1))
        self.final_written = False

    def trainable(self):
        return self.net

    def dataset(self):
        return ToyDataset()

    def collate(self, samples):
        xs, ys = zip(*samples, strict=True)
        return torch.stack(xs), torch.stack(ys)

    def losses(self, batch, step):
        x, y = batch
        pred = self.ddp_module(x)[:, 0]
        return {"loss": torch.nn.functional.mse_loss(pred, y)}

    def save_final(self, out_dir):
        torch.save(self.net.state_dict(), out_dir / "final.pt")
