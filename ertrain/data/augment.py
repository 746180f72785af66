"""On-device batch augmentation: random crop with zero (or reflect) padding and random horizontal flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Augmentations a bundle may name (``DataBundle.augment``) and the padding of their crops.
CROP_FLIP_PADDING = {"crop_flip": "constant", "crop_flip_reflect": "reflect"}


def crop_flip_params(
    batch: int, padding: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets ``(2, batch)`` in ``[0, 2 * padding]`` (rows, columns) and flip coins ``(batch,)``.

    Drawn on the CPU from ``generator``, so the same seed gives the same augmentation on any device.
    """
    if padding < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    return offsets, flips


def crop_flip_with(
    x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int, mode: str = "constant"
) -> torch.Tensor:
    """Crop image ``i`` of ``x`` at ``offsets[:, i]`` of its padded copy; mirror it where ``flips[i]``.

    ``mode``: ``"constant"`` pads with zeros, ``"reflect"`` mirrors the border (the paper's ER_DST code).

    One gather on ``x``'s device, no Python loop over images.
    """
    if x.ndim != 4:
        raise ValueError(f"crop_flip expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    if offsets.shape != (2, b) or flips.shape != (b,):
        raise ValueError(f"offsets {tuple(offsets.shape)} / flips {tuple(flips.shape)} do not fit a batch of {b}")
    offsets, flips = offsets.to(x.device, non_blocking=True), flips.to(x.device, non_blocking=True)
    if mode not in ("constant", "reflect"):
        raise ValueError(f"padding mode must be 'constant' or 'reflect', got {mode!r}")
    padded = F.pad(x, (padding, padding, padding, padding), mode=mode) if padding else x
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols) + offsets[1, :, None]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None, mode: str = "constant"
) -> torch.Tensor:
    """Randomly crop each image of ``x`` (``(B, C, H, W)``) from its padded copy and flip half of them."""
    offsets, flips = crop_flip_params(int(x.shape[0]), padding, generator)
    return crop_flip_with(x, offsets, flips, padding, mode)
