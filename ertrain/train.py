"""The training loop, run directories, checkpoints and resume.

Read top to bottom:

1. :class:`Trainer` holds the model, its :class:`~ertrain.masks.Masking`, the whole dataset on the
   device, and the loop.  ``fit`` shuffles with a generator seeded by ``(seed, epoch)``, batches by
   indexing the on-device tensors, augments the batch on the device (random crop + flip), runs the
   step under bf16 autocast on CUDA (float32 on CPU, same code), and re-applies the masks after
   every optimizer step so pruned weights stay exactly zero.
2. :func:`ertrain.runner.run` gives a config its run directory (:mod:`ertrain.rundir`), resumes from
   the last good checkpoint, dispatches the method and writes ``result.json`` last.
3. Multi-GPU: started under ``torchrun`` (``WORLD_SIZE > 1``) the trainer joins the process group
   (NCCL on CUDA, gloo on CPU), wraps the model in DDP and gives each rank a slice of every global
   batch.  The loss is the sum over the rank's slice divided by the global batch size (times the
   world size, which DDP's averaging divides out), so the update equals the single-process one.
   Every rank samples the same masks from the same seed; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.data.augment import crop_flip_params, crop_flip_with

if TYPE_CHECKING:
    from ertrain.masks import Masking

EVAL_BATCH = 1024
AUGMENT_PADDING = 4


class TrainHook(Protocol):
    """Callbacks of the loop; every method is optional (the loop calls the ones that exist).

    ``after_backward(trainer, step)`` (gradients are ready, before the optimizer step),
    ``after_step(trainer, step)`` (after the step and the mask re-application),
    ``end_epoch(trainer, epoch, metrics)`` (``metrics`` is the epoch's record; hooks may add keys).
    """


# ------------------------------------------------------------------------------------------------
# helpers


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. ``(seed, epoch, stream)``) with NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the ``torchrun`` process group if ``WORLD_SIZE > 1``; return ``(rank, world_size)``."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


# ------------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Model + masks + on-device data + optimizer loop for one run (see the module docstring).

    Build it with :meth:`from_config`; the constructor takes a ready model and data (tests, custom
    models).  Attributes: ``config``, ``model`` (the plain module), ``masking`` (None when dense),
    ``data``, ``device``, ``generator`` (CPU ``torch.Generator`` for masks and methods),
    ``global_step``, ``epoch`` (epochs trained over every ``fit`` call), ``history`` (epoch records),
    ``rank``/``world_size``, ``optimizer``/``scheduler`` (of the current ``fit``).
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        data: DataBundle,
        *,
        masking: Masking | None = None,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(device if device is not None else config.device)
        self.rank, self.world_size = init_distributed(self.device)
        self.data = data.to(self.device)
        self.model = model.to(self.device)
        self.masking = masking
        self.model_kwargs = dict(model_kwargs or {})
        self.generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
        self.channels_last = config.channels_last and self.device.type == "cuda" and len(data.input_shape) == 3
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.amp = config.amp and self.device.type == "cuda"
        self.progress = progress
        self.global_step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        #: Called by ``fit`` after each epoch with ``(trainer, fit_index, fit_epochs_done)``; ``run`` checkpoints here.
        self.on_epoch_end: Callable[[Trainer, int, int], None] | None = None
        self._fit_index = 0
        self._fit_epoch = 0
        self._resume: dict[str, Any] | None = None
        self.net = self._wrap(self.model)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: TrainConfig,
        device: str | torch.device | None = None,
        *,
        data: DataBundle | None = None,
        progress: bool | None = None,
    ) -> Trainer:
        """Load the data, build the model (initialised from ``config.seed``) and sample its ER masks."""
        from ertrain.masks import Masking
        from ertrain.models import build_model

        if data is None:
            data = load_dataset(config.dataset, config.data_dir, seed=config.data_seed, **config.data_options)
        model_kwargs = model_kwargs_for(data)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, 1))
            model = build_model(config.model, width=config.width, **model_kwargs, **config.model_options)
        generator = torch.Generator().manual_seed(config.seed)
        masking = None
        if config.density_scheme != "dense":
            from ertrain.scores import scheme_options

            # SNIP / SynFlow ratios without given ``ratios`` are computed here on this model and data.
            options: dict[str, Any] = scheme_options(
                config.density_scheme, dict(config.density_options), model, data.x_train, data.y_train,
                config.batch_size, generator,
            )
            masking = Masking.from_scheme(
                model, config.density_scheme, config.density, generator, flow_repair=config.flow_repair, **options,
            )
        return cls(config, model, data, masking=masking, device=device, generator=generator,
                   progress=progress, model_kwargs=model_kwargs)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: DDP-wrapped under torchrun (SyncBatchNorm on CUDA), then compiled."""
        net = model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Buffers (masks, BN statistics) are synchronised once at construction, not at every forward.
            params = inspect.signature(DistributedDataParallel).parameters
            key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
            no_sync: dict[str, Any] = {key: False}
            if self.device.type == "cuda":
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
                net = DistributedDataParallel(net, device_ids=[self.device.index], **no_sync)
            else:
                net = DistributedDataParallel(net, **no_sync)
        if self.config.compile:
            # static shapes: the last partial batch compiles once instead of switching every batch to dynamic shapes
            net = torch.compile(net, dynamic=False)  # type: ignore[assignment]
        return net

    # -- optimizer and schedule --------------------------------------------------------------------
    def make_optimizer(self, params: Any = None) -> torch.optim.Optimizer:
        """The configured optimizer (``sgd``/``adam``/``adamw``) over ``params`` (default: all parameters)."""
        c = self.config
        params = list(self.model.parameters()) if params is None else params
        fused = True if self.device.type == "cuda" else None  # one fused kernel per step on CUDA; foreach on CPU
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, fused=fused)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=fused)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, fused=fused)

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, epochs: int, lr_min: float | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Per-epoch schedule: cosine to ``lr_min``, multistep (x0.1 at 50% and 75%), or constant."""
        schedule = self.config.schedule
        lr_min = self.config.lr_min if lr_min is None else lr_min
        if schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=lr_min)
        if schedule == "multistep":
            milestones = [epochs // 2, (epochs * 3) // 4]
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)

    # -- the loop ------------------------------------------------------------------------------------
    def fit(
        self,
        epochs: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        hooks: Sequence[TrainHook] = (),
        desc: str = "",
    ) -> list[dict[str, Any]]:
        """Train ``epochs`` epochs; return this call's per-epoch records.

        Each record has ``epoch`` (global), ``fit``/``fit_epoch``, ``lr``, ``train_loss``,
        ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``density``, ``time_s``.
        After a checkpoint restore the first call continues the interrupted fit.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        fit_index = self._fit_index
        self._fit_index += 1
        opt = optimizer if optimizer is not None else self.make_optimizer()
        sched = scheduler if scheduler is not None else self.make_scheduler(opt, epochs)
        self.optimizer, self.scheduler = opt, sched
        start = 0
        if self._resume is not None and self._resume["fit_index"] == fit_index:
            if self._resume.get("optimizer"):
                opt.load_state_dict(self._resume["optimizer"])
            if self._resume.get("scheduler"):
                sched.load_state_dict(self._resume["scheduler"])
            start = int(self._resume["fit_epoch"])
        self._resume = None
        self._fit_epoch = start
        bar = self._progress_bar(epochs, start, desc)
        try:
            for e in range(start, epochs):
                t0 = time.perf_counter()
                steps = self._steps_bar(e, epochs) if bar is not None and not bar.disable else None
                with self._epoch_rng():
                    train_loss, train_acc = self._train_epoch(opt, hooks, steps)
                if steps is not None:
                    steps.close()
                lr = opt.param_groups[0]["lr"]
                sched.step()
                test = self.evaluate("test")
                record: dict[str, Any] = {
                    "epoch": self.epoch, "fit": fit_index, "fit_epoch": e, "lr": lr,
                    "train_loss": train_loss, "train_accuracy": train_acc,
                    "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                    "density": self.density(), "time_s": time.perf_counter() - t0,
                }
                for hook in hooks:
                    if hasattr(hook, "end_epoch"):
                        hook.end_epoch(self, e, record)
                self.epoch += 1
                self._fit_epoch = e + 1
                self.history.append(record)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self, fit_index, e + 1)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{train_loss:.4f}", acc=_fmt(train_acc),
                                    test_acc=_fmt(test["accuracy"]), s_per_epoch=f"{record['time_s']:.2f}")
        finally:
            if bar is not None:
                bar.close()
        return [r for r in self.history if r["fit"] == fit_index]

    def _steps_bar(self, epoch: int, epochs: int) -> Any:
        from tqdm.auto import tqdm

        total = 1 if self.data.is_graph else -(-self.data.num_train // self.config.batch_size)
        return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False, file=sys.stderr,
                    dynamic_ncols=True)

    def _progress_bar(self, epochs: int, start: int, desc: str) -> Any:
        if self.rank != 0 or self.progress is False:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=epochs, initial=start, desc=desc or "train", unit="epoch", file=sys.stderr,
                    disable=None if self.progress is None else False, dynamic_ncols=True)

    def _epoch_rng(self) -> contextlib.AbstractContextManager[Any]:
        """Seed torch's global RNG (dropout) from ``(seed, epoch)`` inside a fork that restores it afterwards."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        ctx = torch.random.fork_rng(devices=devices)

        @contextlib.contextmanager
        def seeded() -> Iterator[None]:
            with ctx:
                torch.manual_seed(derive_seed(self.config.seed, self.epoch, 4))
                yield

        return seeded()

    def epoch_generator(self, stream: int = 0) -> torch.Generator:
        """CPU generator for the current epoch's shuffling (stream 0) and augmentation (stream 1)."""
        return torch.Generator().manual_seed(derive_seed(self.config.seed, self.epoch, 2 + stream))

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """This rank's share of each shuffled (and augmented) global batch: ``(x, y, global_batch_size)``."""
        data, c = self.data, self.config
        n = data.num_train
        perm = torch.randperm(n, generator=self.epoch_generator(0)).to(self.device)
        if data.train_index is not None:
            perm = data.train_index[perm]
        aug_gen = self.epoch_generator(1)
        augment = c.augment and data.augment == "crop_flip"
        for start in range(0, n, c.batch_size):
            idx = perm[start:start + c.batch_size]
            size = int(idx.numel())
            lo, hi = _rank_slice(size, self.rank, self.world_size)
            x = data.x_train[idx[lo:hi]]
            y = data.y_train[idx[lo:hi]]
            if augment:
                offsets, flips = crop_flip_params(size, AUGMENT_PADDING, aug_gen)
                x = crop_flip_with(x, offsets[:, lo:hi], flips[lo:hi], AUGMENT_PADDING)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y, size

    def _loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.data.task == "classification":
            return F.cross_entropy(out, y, reduction="sum", label_smoothing=self.config.label_smoothing)
        return F.mse_loss(out, y, reduction="sum") / max(1, out.shape[-1] if out.ndim > 1 else 1)

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _train_epoch(
        self, opt: torch.optim.Optimizer, hooks: Sequence[TrainHook], steps_bar: Any = None
    ) -> tuple[float, float | None]:
        self.net.train()
        loss_total = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        for x, y, global_size, nodes in self._batches():
            with self._autocast():
                out = self.net(x, self.data.adj)[nodes] if nodes is not None else self.net(x)
            loss_sum = self._loss_sum(out, y)
            loss = loss_sum * (self.world_size / global_size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for hook in hooks:
                if hasattr(hook, "after_backward"):
                    hook.after_backward(self, self.global_step)
            opt.step()
            if self.masking is not None:
                self.masking.apply_()
            for hook in hooks:
                if hasattr(hook, "after_step"):
                    hook.after_step(self, self.global_step)
            self.global_step += 1
            loss_total += loss_sum.detach()
            if self.data.task == "classification":
                correct += (out.detach().argmax(dim=-1) == y).sum()
            seen += int(y.shape[0])
            if steps_bar is not None:
                steps_bar.update(1)
        stats = torch.stack([loss_total, correct, torch.full((), float(seen), device=self.device, dtype=torch.float64)])
        stats = self._all_reduce(stats)
        n = max(1.0, float(stats[2]))
        acc = float(stats[1]) / n if self.data.task == "classification" else None
        return float(stats[0]) / n, acc

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]]:
        """Training batches ``(x, y, global_batch_size, nodes)``; graphs give one full batch with node indices."""
        if not self.data.is_graph:
            for x, y, size in self.train_batches():
                yield x, y, size, None
            return
        assert self.data.train_index is not None
        idx = self.data.train_index
        lo, hi = _rank_slice(int(idx.numel()), self.rank, self.world_size)
        yield self.data.x_train, self.data.y_train[idx[lo:hi]], int(idx.numel()), idx[lo:hi]

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """Mean loss and accuracy (fraction in [0, 1]; None for regression) on ``split``.

        ``split`` is ``"test"`` or ``"train"`` (un-augmented), or ``"val"`` for graph data.
        Under DDP each rank evaluates a slice and the sums are all-reduced.
        """
        data = self.data
        if split not in ("train", "test", "val"):
            raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
        self.model.eval()
        if data.is_graph:
            index = {"train": data.train_index, "val": data.val_index, "test": data.test_index}[split]
            if index is None:
                raise ValueError(f"dataset {data.name!r} has no {split!r} split")
            with self._autocast():
                out = self.model(data.x_train, data.adj)
            out, y = out[index].float(), data.y_train[index]
            sums = torch.stack([self._loss_sum(out, y).double(), (out.argmax(-1) == y).sum().double(),
                                torch.tensor(float(y.shape[0]), device=self.device, dtype=torch.float64)])
        else:
            if split == "val":
                raise ValueError(f"dataset {data.name!r} has no 'val' split")
            x_all, y_all = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
            lo, hi = _rank_slice(int(x_all.shape[0]), self.rank, self.world_size)
            sums = torch.zeros(3, device=self.device, dtype=torch.float64)
            for start in range(lo, hi, EVAL_BATCH):
                x = x_all[start:min(hi, start + EVAL_BATCH)]
                y = y_all[start:min(hi, start + EVAL_BATCH)]
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self._autocast():
                    out = self.model(x)
                out = out.float()
                sums[0] += self._loss_sum(out, y).double()
                if data.task == "classification":
                    sums[1] += (out.argmax(-1) == y).sum()
                sums[2] += y.shape[0]
        sums = self._all_reduce(sums)
        n = max(1.0, float(sums[2]))
        return {
            "loss": float(sums[0]) / n,
            "accuracy": float(sums[1]) / n if data.task == "classification" else None,
            "n": int(sums[2]),
        }

    def density(self) -> float:
        """Realised overall density of the masked layers (1.0 without masking)."""
        return float(self.masking.overall_density()) if self.masking is not None else 1.0

    # -- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; tensors on the CPU."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "masks": _to_cpu(self.masking.state_dict()) if self.masking is not None else {},
            "optimizer": _to_cpu(self.optimizer.state_dict()) if self.optimizer is not None else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "epoch": self.epoch,
            "global_step": self.global_step,
            "fit_index": max(0, self._fit_index - 1),
            "fit_epoch": self._fit_epoch,
            "generator": self.generator.get_state(),
            "config": self.config.to_json(),
            "model_kwargs": json.dumps(self.model_kwargs),
            "history": json.dumps(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next ``fit`` call continues the interrupted one."""
        self.model.load_state_dict(state["model"])
        if self.masking is not None and state.get("masks"):
            self.masking.load_state_dict(state["masks"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.generator.set_state(state["generator"])
        self.history = json.loads(state.get("history", "[]"))
        self._fit_index = int(state["fit_index"])
        self._resume = {
            "fit_index": int(state["fit_index"]),
            "fit_epoch": int(state["fit_epoch"]),
            "optimizer": state.get("optimizer"),
            "scheduler": state.get("scheduler"),
        }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _rank_slice(size: int, rank: int, world: int) -> tuple[int, int]:
    """Bounds of rank's contiguous share of ``size`` items (as ``torch.tensor_split`` splits them)."""
    q, r = divmod(size, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def model_kwargs_for(data: DataBundle) -> dict[str, Any]:
    """The ``build_model`` keyword arguments that follow from the data's shapes."""
    shape = data.input_shape
    kwargs: dict[str, Any] = {"num_classes": data.num_classes, "in_features": int(math.prod(shape))}
    if len(shape) == 3:
        kwargs["in_channels"] = int(shape[0])
        kwargs["input_size"] = int(shape[-1])
    return kwargs


def __getattr__(name: str) -> Any:
    """Names that moved: ``run``/``load_run`` to :mod:`ertrain.runner`, checkpoints to :mod:`ertrain.rundir`."""
    moved = {"run": "ertrain.runner", "load_run": "ertrain.runner", "CHECKPOINT": "ertrain.rundir",
             "PREVIOUS_CHECKPOINT": "ertrain.rundir", "read_checkpoint": "ertrain.rundir",
             "save_checkpoint": "ertrain.rundir", "state_digest": "ertrain.rundir"}
    if name in moved:
        import importlib

        return getattr(importlib.import_module(moved[name]), name)
    raise AttributeError(f"module 'ertrain.train' has no attribute {name!r}")


__all__ = ["TrainHook", "Trainer", "derive_seed", "model_kwargs_for", "resolve_device"]
