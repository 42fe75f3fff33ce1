"""LoRA on the ViT's attention and MLP linears (peft), and merging it away for deployment."""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

__all__ = ["LORA_TARGETS", "add_lora", "has_lora", "merge_lora_layers"]

#: Full-match regex on module names: qkv, proj, fc1, fc2 inside the blocks only (the RGB patch
#: embedding is also called 'proj' and must stay untouched).
LORA_TARGETS = r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float) -> nn.Module:
    """Wrap the block linears of ``model`` (a timm ViT) with LoRA adapters, in place."""
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none"
    )
    return inject_adapter_in_model(config, model)


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


def merge_lora_layers(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and replace the wrapper by that layer.

    Afterwards the model is a plain timm ViT (state-dict keys without ``base_layer``/``lora_``).
    Returns how many layers were merged.
    """
    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in wrapped:
        layer.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return len(wrapped)
