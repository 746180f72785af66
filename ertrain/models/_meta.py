"""Models without memory: built on the meta device with their weight initialisation skipped.

A meta tensor has shape and dtype but no values, so initialising one computes nothing; some initialisers
(``normal_``, ``trunc_normal_``) would still load torch's compiler stack on the meta device (two seconds),
because their meta kernels are Python decompositions.  Within :func:`shapes_only` the in-place fills of meta
tensors return at once; every other operation runs as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: In-place operations that only change a tensor's values, as a handler sees them: the tensor methods weight
#: initialisation uses, and the ``torch.nn.init`` initialisers that dispatch themselves (the others are seen
#: through the tensor methods they call; ``eye_`` fills through ``torch.eye(out=...)`` and is not skipped).
VALUE_FILLS = frozenset({
    "normal_", "uniform_", "fill_", "zero_", "copy_", "erfinv_", "clamp_", "clamp_min_", "clamp_max_", "mul_",
    "add_", "sub_", "div_", "sqrt_", "exponential_", "bernoulli_", "random_", "log_normal_", "cauchy_",
    "geometric_", "constant_", "kaiming_uniform_",
})


class _SkipMetaFills(TorchFunctionMode):
    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in VALUE_FILLS:
            # the filled tensor: a method's self, or the ``tensor`` argument of a torch.nn.init function
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build on the meta device without initialising: shapes and parameter counts, no memory, no init time."""
    with torch.device("meta"), _SkipMetaFills():
        yield


__all__ = ["VALUE_FILLS", "shapes_only"]
