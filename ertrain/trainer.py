"""The training loop: one :class:`Trainer` per run.

Read top to bottom:

1. :class:`Trainer` holds the model, its :class:`~ertrain.masks.Masking`, the whole dataset on the
   device, and the loop.  ``fit`` shuffles with a generator seeded by ``(seed, epoch)``, batches by
   indexing the on-device tensors, augments the batch on the device (random crop + flip), runs the
   step under bf16 autocast on CUDA (float32 on CPU, same code), and re-applies the masks after
   every optimizer step so pruned weights stay exactly zero (:mod:`ertrain.batches`,
   :mod:`ertrain.evaluation`, :mod:`ertrain.optim`, :mod:`ertrain.progress` hold those pieces).
2. :func:`ertrain.runner.run` gives a config its run directory (:mod:`ertrain.rundir`), resumes from
   the last good checkpoint, dispatches the method and writes ``result.json`` last.  Methods use
   the narrow interface listed in :mod:`ertrain.methods.base`.
3. Multi-GPU: started under ``torchrun`` (``WORLD_SIZE > 1``) the trainer joins the process group
   (NCCL on CUDA, gloo on CPU), wraps the model in DDP and gives each rank a slice of every global
   batch.  The loss is the sum over the rank's slice divided by the global batch size (times the
   world size, which DDP's averaging divides out), so the update equals the single-process one.
   Every rank samples the same masks from the same seed; only rank 0 writes files.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from ertrain import optim
from ertrain.batches import (
    Placement,
    derive_seed,
    epoch_rng,
    resolve_device,
    step_batches,
    steps_per_epoch,
    train_batches,
)
from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.engines import use_engine
from ertrain.evaluation import evaluate_split, hold_out, loss_sum
from ertrain.progress import Silent, progress_for

if TYPE_CHECKING:
    from ertrain.masks import Masking

Scheduler = torch.optim.lr_scheduler.LRScheduler


class TrainHook(Protocol):
    """Callbacks of the loop; every method is optional (the loop calls the ones that exist).

    ``after_backward(trainer, step)`` (gradients are ready, before the optimizer step),
    ``after_step(trainer, step)`` (after the step and the mask re-application),
    ``end_epoch(trainer, epoch, metrics)`` (``metrics`` is the epoch's record; hooks may add keys).
    :class:`ertrain.methods.base.Method` has all three (no-ops unless overridden).
    """


class Trainer:
    """Model + masks + on-device data + optimizer loop for one run (see the module docstring).

    Build it with :meth:`from_config`; the constructor takes a ready model and data (tests, custom
    models).  Attributes: ``config``, ``model`` (the plain module), ``masking`` (None when dense;
    change it with :meth:`use_masking`), ``data``, ``device``, ``generator`` (CPU ``torch.Generator``
    for masks and methods), ``global_step``, ``epoch`` (epochs trained over every ``fit`` call),
    ``history`` (epoch records), ``rank``/``world_size``, ``optimizer``/``scheduler`` (of the
    current ``fit``), ``amp``/``channels_last`` (the step's numeric format).
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
        self.data, self.val_data = hold_out(data.to(self.device), config.val_fraction)
        self.model, self.masking = use_engine(config, model.to(self.device), masking, self.device, data)
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
        self.scheduler: Scheduler | None = None
        #: Called by ``fit`` after each epoch with ``(trainer, fit_index, fit_epochs_done)``; ``run`` checkpoints here.
        self.on_epoch_end: Callable[[Trainer, int, int], None] | None = None
        self._fit_index = 0
        self._fit_epoch = 0
        self._resume: dict[str, Any] | None = None
        self.net = wrap_model(self.model, self.device, self.world_size, config.compile)

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
        if data is None:
            data = load_dataset(config.dataset, config.data_dir, seed=config.data_seed, **config.data_options)
        model, model_kwargs = build_seeded_model(config, data)
        generator = torch.Generator().manual_seed(config.seed)
        masking = build_masking(config, model, data, generator)
        scale_fan_in(config, masking)
        return cls(config, model, data, masking=masking, device=device, generator=generator,
                   progress=progress, model_kwargs=model_kwargs)

    # -- the interface of methods (ertrain.methods.base lists it) -------------------------------------
    def make_optimizer(self, params: Any = None) -> torch.optim.Optimizer:
        """The configured optimizer (:func:`ertrain.optim.make_optimizer`) over ``params`` (default: all)."""
        return optim.make_optimizer(self.config, list(self.model.parameters()) if params is None else params,
                                    self.device)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, epochs: int, lr_min: float | None = None) -> Scheduler:
        """The configured per-epoch schedule (:func:`ertrain.optim.make_scheduler`)."""
        return optim.make_scheduler(self.config, optimizer, epochs, lr_min)

    def use_masking(self, masking: Masking | None) -> None:
        """Set the masks the loop re-applies after every step (None: no re-application)."""
        self.masking = masking

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch of :meth:`fit` (one per batch; one for full-batch graph data)."""
        return steps_per_epoch(self.data, self.config.batch_size)

    def fit(
        self,
        epochs: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Scheduler | None = None,
        hooks: Sequence[TrainHook] = (),
        desc: str = "",
    ) -> list[dict[str, Any]]:
        """Train ``epochs`` epochs; return this call's per-epoch records.

        Each record has ``epoch`` (global), ``fit``/``fit_epoch``, ``lr``, ``train_loss``,
        ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``density``, ``time_s`` (``val_loss``, ``val_accuracy``
        with a validation split).  After a checkpoint restore the first call continues the interrupted fit.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        fit_index, start = self._begin_fit(epochs, optimizer, scheduler)
        show = progress_for(self.progress, self.rank, desc=desc, epochs=epochs, start=start,
                            steps=self.steps_per_epoch)
        try:
            for e in range(start, epochs):
                show.start_epoch(e)
                record = self._epoch(fit_index, e, hooks, show)
                self.epoch += 1
                self._fit_epoch = e + 1
                self.history.append(record)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self, fit_index, e + 1)
                show.end_epoch(e, record)
        finally:
            show.close()
        return [r for r in self.history if r["fit"] == fit_index]

    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """Mean loss and accuracy on ``split``: ``train``, ``test`` or ``val`` (held-out rows; graphs: their own)."""
        return evaluate_split(self.model, self.data, self.val_data, split, self.placement,
                              label_smoothing=self.config.label_smoothing)

    def density(self) -> float:
        """Realised overall density of the masked layers (1.0 without masking)."""
        return float(self.masking.overall_density()) if self.masking is not None else 1.0

    # -- the loop -------------------------------------------------------------------------------------
    @property
    def placement(self) -> Placement:
        return Placement(self.device, self.rank, self.world_size, self.amp, self.channels_last)

    def _begin_fit(self, epochs: int, optimizer: torch.optim.Optimizer | None,
                   scheduler: Scheduler | None) -> tuple[int, int]:
        """Index of this fit and its first epoch; the optimizer and schedule (restored after a resume)."""
        fit_index = self._fit_index
        self._fit_index += 1
        opt = optimizer if optimizer is not None else self.make_optimizer()
        sched = scheduler if scheduler is not None else self.make_scheduler(opt, epochs)
        self.optimizer, self.scheduler = opt, sched
        start, resume, self._resume = 0, self._resume, None
        if resume is not None and resume["fit_index"] == fit_index:
            if resume.get("optimizer"):
                opt.load_state_dict(resume["optimizer"])
            if resume.get("scheduler"):
                sched.load_state_dict(resume["scheduler"])
            start = int(resume["fit_epoch"])
        self._fit_epoch = start
        return fit_index, start

    def _epoch(self, fit_index: int, e: int, hooks: Sequence[TrainHook], show: Silent) -> dict[str, Any]:
        """Train one epoch, step the schedule, evaluate; the epoch's record (after the hooks' ``end_epoch``)."""
        assert self.optimizer is not None and self.scheduler is not None
        t0 = time.perf_counter()
        with epoch_rng(self.device, self.config.seed, self.epoch):
            train_loss, train_acc = self._train_epoch(self.optimizer, hooks, show)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        test = self.evaluate("test")
        record: dict[str, Any] = {
            "epoch": self.epoch, "fit": fit_index, "fit_epoch": e, "lr": lr,
            "train_loss": train_loss, "train_accuracy": train_acc,
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "density": self.density(), "time_s": time.perf_counter() - t0,
        }
        if self.val_data is not None or self.data.val_index is not None:  # a held-out split, or graph val nodes
            val = self.evaluate("val")
            record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        for hook in hooks:
            if hasattr(hook, "end_epoch"):
                hook.end_epoch(self, e, record)
        return record

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """This rank's share of each shuffled (and augmented) global batch: ``(x, y, global_batch_size)``."""
        return train_batches(self.data, self.config.batch_size, self.placement, seed=self.config.seed,
                             epoch=self.epoch, augment=self.config.augment)

    def _train_epoch(
        self, opt: torch.optim.Optimizer, hooks: Sequence[TrainHook], show: Silent | None = None
    ) -> tuple[float, float | None]:
        """One pass over the training batches; the epoch's mean loss and accuracy over every rank."""
        after_backward = [h.after_backward for h in hooks if hasattr(h, "after_backward")]
        after_step = [h.after_step for h in hooks if hasattr(h, "after_step")]
        place, task = self.placement, self.data.task
        self.net.train()
        loss_total = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        for x, y, global_size, nodes in step_batches(self.data, place, self.train_batches):
            with place.autocast():
                out = self.net(x, self.data.adj)[nodes] if nodes is not None else self.net(x)
            batch_loss = loss_sum(out, y, task, self.config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            (batch_loss * (self.world_size / global_size)).backward()
            for hook in after_backward:
                hook(self, self.global_step)
            opt.step()
            if self.masking is not None:
                self.masking.apply_()
            for hook in after_step:
                hook(self, self.global_step)
            self.global_step += 1
            loss_total += batch_loss.detach()
            if task == "classification":
                correct += (out.detach().argmax(dim=-1) == y).sum()
            seen += int(y.shape[0])
            if show is not None:
                show.step()
        sums = place.all_reduce(torch.stack([loss_total, correct, torch.full((), float(seen), device=self.device,
                                                                             dtype=torch.float64)]))
        n = max(1.0, float(sums[2]))
        return float(sums[0]) / n, (float(sums[1]) / n if task == "classification" else None)

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        self.placement.barrier()

    # -- checkpoint state -----------------------------------------------------------------------------
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
        self._resume = {key: state.get(key) for key in ("fit_index", "fit_epoch", "optimizer", "scheduler")}


# --------------------------------------------------------------------------------------------------
# construction helpers


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


def wrap_model(model: nn.Module, device: torch.device, world_size: int, compile: bool) -> nn.Module:
    """The module the training step calls: DDP-wrapped under torchrun (SyncBatchNorm on CUDA), then compiled."""
    net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers (masks, BN statistics) are synchronised once at construction, not at every forward.
        params = inspect.signature(DistributedDataParallel).parameters
        key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        no_sync: dict[str, Any] = {key: False}
        if device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            net = DistributedDataParallel(net, device_ids=[device.index], **no_sync)
        else:
            net = DistributedDataParallel(net, **no_sync)
    if compile:
        # static shapes: the last partial batch compiles once instead of switching every batch to dynamic shapes
        net = torch.compile(net, dynamic=False)  # type: ignore[assignment]
    return net


def build_seeded_model(config: TrainConfig, data: DataBundle) -> tuple[nn.Module, dict[str, Any]]:
    """``config.model`` for ``data``'s shapes, initialised from ``config.seed``; and its ``build_model`` arguments."""
    from ertrain.models import build_model

    model_kwargs = model_kwargs_for(data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, 1))
        model = build_model(config.model, width=config.width, **model_kwargs, **config.model_options)
    return model, model_kwargs


def build_masking(
    config: TrainConfig, model: nn.Module, data: DataBundle, generator: torch.Generator
) -> Masking | None:
    """The ER masks of ``config.density_scheme`` for ``model`` (None for ``dense``), sampled with ``generator``
    through the one mask plan (:func:`ertrain.masks.plan_masks`, as ``ertrain densities``), over the
    parameters that ``config.mask_options`` chooses."""
    if config.density_scheme == "dense":
        return None
    from ertrain.masks import Masking
    from ertrain.scores import scheme_options

    # SNIP / SynFlow ratios without given ``ratios`` are computed here on this model and data.
    options: dict[str, Any] = scheme_options(
        config.density_scheme, dict(config.density_options), model, data.x_train, data.y_train,
        config.batch_size, generator,
    )
    return Masking.from_scheme(
        model, config.density_scheme, config.density, generator, flow_repair=config.flow_repair,
        **dict(config.mask_options), **options,
    )


def scale_fan_in(config: TrainConfig, masking: Masking | None) -> dict[str, list[float]]:
    """With ``config.init_scale_fan``: multiply the masked weights by ``sqrt(fan_in / kept fan-in)``.

    :func:`ertrain.init.init_scale_fan` with ``per=config.init_scale_fan_per``.

    ``per="global"`` uses the requested overall density (the paper's code's ``--scale-fan``).
    Returns the factors by layer (``{}`` when off or dense).
    """
    if not config.init_scale_fan or masking is None:
        return {}
    from ertrain.init import init_scale_fan

    return init_scale_fan(list(masking.layers.items()), list(masking.masks.values()),
                          per=config.init_scale_fan_per, density=config.density)


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
    return model_kwargs_for_shape(tuple(data.input_shape), data.num_classes)


def model_kwargs_for_shape(shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The ``build_model`` keyword arguments for examples of ``shape`` in ``num_classes`` classes."""
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_features": int(math.prod(shape))}
    if len(shape) == 3:
        kwargs["in_channels"] = int(shape[0])
        kwargs["input_size"] = int(shape[-1])
    return kwargs


__all__ = ["TrainHook", "Trainer", "build_masking", "build_seeded_model", "derive_seed", "model_kwargs_for",
           "model_kwargs_for_shape", "resolve_device", "scale_fan_in", "wrap_model"]
