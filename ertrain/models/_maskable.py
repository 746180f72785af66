"""Which weights are masked, decided per *parameter*: a registry of rules, name globs, tied weights.

Every tensor parameter of a model with two or more dimensions is

* **masked** by a rule that knows its layout, hence its fan-in / fan-out (``Linear``, ``Conv1d/2d/3d``,
  ``ConvTranspose*``, ``Bilinear``, ``nn.MultiheadAttention``'s input projections, ``nn.RNN/LSTM/GRU``
  weights, the transposed ``Conv1D`` of GPT-2 code), or
* **excluded** by a rule (embeddings, norms, anything named ``bias*``), or
* **refused**: :func:`mask_scope` raises :class:`UnmaskableParameterError` naming every parameter no
  rule knows, with how to include or exclude it.

Parameters with fewer than two dimensions (biases, norm scales) are never masked.  Users choose by
name glob (``include=["encoder.*.pos"]``, ``exclude=["head.weight"]``; a glob matches a parameter's
full name, e.g. ``layers.0.self_attn.in_proj_weight``) and add a rule for their own layer type with
:func:`register_param_rule`.

Layout.  A rule's mask lives in the parameter's own layout; for densities and flow repair the
parameter is read as ``(out, in, *kernel)`` (its *canonical* view; ``transposed`` rules swap the first
two dimensions: ``ConvTranspose`` stores ``(in, out, ...)`` and GPT-2's ``Conv1D`` ``(in, out)``).
Fan-in and fan-out are those of ``torch.nn.init`` on that view: ``in * prod(kernel)`` and
``out * prod(kernel)``.

Fused matrices stay one matrix.  ``in_proj_weight`` of ``nn.MultiheadAttention`` (``(3E, E)``, the
query, key and value projections stacked) and an RNN's ``weight_ih_l*`` / ``weight_hh_l*`` (the gate
blocks stacked: ``(4H, in)`` for an LSTM, ``(3H, in)`` for a GRU) are each masked as one
``(out, in)`` matrix: they are one parameter, one optimizer entry and one matrix product, every row
(a query / key / value unit, or one gate of one hidden unit) reads the same inputs, and flow repair
gives every such row an incoming edge.  A density scheme therefore sees one layer of ``3E x E``
weights, as PyTorch computes it (ERK's score ``(3E + E) / (3E E)``); a model that keeps ``q/k/v``
separate (``q_proj_weight`` etc., or three ``Linear``) gets three layers of ``E x E``.

Tied parameters (one tensor under several names, e.g. an output head sharing the token embedding)
are one parameter: masked and counted once, under the first name that a masking rule covers.  When
a masking rule and an exclusion rule both claim it (head <-> embedding), the default ``tied="dense"``
keeps it dense and reports the tie; ``tied="mask"`` masks it (and so zeroes embedding rows).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: How a tie between a masked and an excluded name is resolved (see the module docstring).
TIED_MODES = ("dense", "mask")

_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.modules.batchnorm._NormBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class UnmaskableParameterError(ValueError):
    """A parameter with two or more dimensions that no rule, include or exclude glob covers."""


@dataclass(frozen=True)
class ParamRule:
    """One maskability rule: which parameters it covers and whether they are masked.

    A parameter ``module.<param>`` matches when ``module`` is an instance of ``types`` (any type when
    None), ``predicate(module)`` holds (duck typing; always when None) and ``<param>`` matches one of
    the ``params`` globs.  ``mask``: masked (True) or kept dense (False).  ``transposed``: the tensor is
    stored ``(in, out, ...)``.
    """

    name: str
    params: tuple[str, ...]
    types: tuple[type[nn.Module], ...] | None = None
    predicate: Callable[[nn.Module], bool] | None = None
    mask: bool = True
    transposed: bool = False
    help: str = ""

    def matches(self, module: nn.Module, param_name: str) -> bool:
        if self.types is not None and not isinstance(module, self.types):
            return False
        if self.predicate is not None and not self.predicate(module):
            return False
        return any(fnmatch.fnmatchcase(param_name, g) for g in self.params)


def _is_gpt2_conv1d(module: nn.Module) -> bool:
    """Hugging Face GPT-2's ``Conv1D`` (a linear layer storing its weight as ``(in, out)``), by duck typing."""
    w = module._parameters.get("weight")
    return (type(module).__name__ == "Conv1D" and isinstance(getattr(module, "nf", None), int)
            and w is not None and w.dim() == 2 and w.shape[1] == module.nf)


#: The rules, tried in order; the first that matches decides.  Add one with :func:`register_param_rule`.
PARAM_RULES: dict[str, ParamRule] = {
    r.name: r for r in (
        ParamRule("bias", ("bias*",), mask=False, help="biases are never masked"),
        ParamRule("linear", ("weight",), (nn.Linear,), help="(out, in)"),
        ParamRule("conv", ("weight",), (nn.Conv1d, nn.Conv2d, nn.Conv3d), help="(out, in/groups, *kernel)"),
        ParamRule("conv_transpose", ("weight",), (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
                  transposed=True, help="(in, out/groups, *kernel)"),
        ParamRule("bilinear", ("weight",), (nn.Bilinear,), help="(out, in1, in2)"),
        ParamRule("multihead_attention", ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"),
                  (nn.MultiheadAttention,), help="in_proj_weight (3E, E) as one matrix; q/k/v (E, d)"),
        ParamRule("recurrent", ("weight_ih_l*", "weight_hh_l*", "weight_hr_l*"), (nn.RNNBase,),
                  help="(gates * hidden, in): the gate blocks as one matrix"),
        ParamRule("gpt2_conv1d", ("weight",), predicate=_is_gpt2_conv1d, transposed=True,
                  help="GPT-2 Conv1D, (in, out)"),
        ParamRule("embedding", ("weight",), (nn.Embedding, nn.EmbeddingBag), mask=False,
                  help="embeddings are kept dense"),
        ParamRule("norm", ("*",), _NORMS, mask=False, help="normalisation parameters are kept dense"),
    )
}


def register_param_rule(rule: ParamRule) -> ParamRule:
    """Add ``rule`` before the built-in rules (so it wins over them); a name already used raises."""
    if rule.name in PARAM_RULES:
        raise ValueError(f"a parameter rule named {rule.name!r} exists; valid new names differ from "
                         f"{', '.join(PARAM_RULES)}")
    items = list(PARAM_RULES.items())
    PARAM_RULES.clear()
    PARAM_RULES.update({rule.name: rule, **dict(items)})
    return rule


def unregister_param_rule(name: str) -> None:
    """Remove the rule ``name`` (``ValueError`` if there is none)."""
    if PARAM_RULES.pop(name, None) is None:
        raise ValueError(f"no parameter rule named {name!r}; valid names: {', '.join(PARAM_RULES)}")


@dataclass(frozen=True, eq=False)
class MaskTarget:
    """One masked parameter: ``module.<param_name>``, known by ``name`` (the module's name for a
    ``weight``, else ``<module>.<param_name>``); ``aliases`` are its other (tied) full names."""

    name: str
    module: nn.Module
    param_name: str
    rule: str
    transposed: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def weight(self) -> torch.Tensor:
        """The masked tensor (named ``weight`` so that code written for layers reads it unchanged)."""
        w: torch.Tensor = getattr(self.module, self.param_name)
        return w

    @property
    def full_name(self) -> str:
        """The parameter's full name (``<module>.<param_name>``)."""
        if self.param_name != "weight":
            return self.name
        return f"{self.name}.weight" if self.name else "weight"

    @property
    def mask_buffer(self) -> str:
        """Name of the mask buffer on the owning module (``weight_mask`` for a ``weight``)."""
        return f"{self.param_name}_mask"

    @property
    def layer(self) -> Any:
        """The owning module when the parameter is its ``weight``, else this target (it has ``.weight``)."""
        return self.module if self.param_name == "weight" else self

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.weight.shape)

    @property
    def canonical_shape(self) -> tuple[int, ...]:
        """The shape read as ``(out, in, *kernel)``."""
        s = self.shape
        return (s[1], s[0], *s[2:]) if self.transposed else s

    @property
    def fan_in(self) -> int:
        return math.prod(self.canonical_shape[1:])

    @property
    def fan_out(self) -> int:
        s = self.canonical_shape
        return s[0] * math.prod(s[2:])

    def canonical(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (in the parameter's layout) viewed as ``(out, in, *kernel)``; the inverse is itself."""
        return t.transpose(0, 1) if self.transposed else t

    def register_forward_hook(self, hook: Callable[..., Any]) -> Any:
        """A forward hook on the owning module (FLOPs counting)."""
        return self.module.register_forward_hook(hook)

    def __repr__(self) -> str:
        return f"MaskTarget({self.name!r}, rule={self.rule!r}, shape={self.shape})"


@dataclass(frozen=True)
class MaskScope:
    """What :func:`mask_scope` found: the masked parameters and everything kept dense, with why."""

    targets: tuple[MaskTarget, ...]
    #: ``{"name", "shape", "params", "reason"}`` of every unmasked parameter with 2+ dimensions.
    excluded: tuple[dict[str, Any], ...] = ()
    #: ``{"names", "masked_as" | None, "resolution"}`` of every tied parameter.
    ties: tuple[dict[str, Any], ...] = ()
    #: Weights in parameters with fewer than two dimensions (biases, norm scales).
    small_params: int = 0
    total_params: int = 0

    @property
    def masked_params(self) -> int:
        return sum(math.prod(t.shape) for t in self.targets)

    @property
    def unmasked_params(self) -> int:
        return self.total_params - self.masked_params

    def report(self) -> dict[str, Any]:
        """JSON-able summary (names, shapes, counts, ties)."""
        return {
            "excluded": [dict(e) for e in self.excluded], "ties": [dict(t) for t in self.ties],
            "total_params": self.total_params, "masked_params": self.masked_params,
            "unmasked_params": self.unmasked_params, "small_params": self.small_params,
        }


def _globbed(name: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def _decide(module: nn.Module, full: str, pname: str, include: Sequence[str],
            exclude: Sequence[str]) -> tuple[str, str, bool]:
    """``(action, why, transposed)`` for one name of a parameter: action is mask / exclude / unknown."""
    if _globbed(full, exclude):
        return "exclude", "excluded by name", False
    for rule in PARAM_RULES.values():
        if rule.matches(module, pname):
            return ("mask" if rule.mask else "exclude"), rule.name, rule.transposed
    if _globbed(full, include):
        return "mask", "included by name", False
    return "unknown", "", False


def _split(full: str) -> tuple[str, str]:
    mod, _, pname = full.rpartition(".")
    return mod, pname


def _unknown_error(unknown: list[tuple[str, nn.Module, torch.Tensor]]) -> UnmaskableParameterError:
    items = "; ".join(f"{n!r} {tuple(p.shape)} of {type(m).__name__}" for n, m, p in unknown)
    names = [n for n, _, _ in unknown]
    return UnmaskableParameterError(
        f"no masking rule covers parameter(s) {items}: mask them with include={names!r} (--include), keep them "
        f"dense with exclude={names!r} (--exclude), or add a rule for the layer type with "
        "ertrain.models.register_param_rule"
    )


def mask_scope(
    model: nn.Module, *, include: Iterable[str] = (), exclude: Iterable[str] = (), tied: str = "dense",
) -> MaskScope:
    """The parameters of ``model`` to mask, in registration (forward) order, and what stays dense.

    ``include`` / ``exclude``: name globs over full parameter names; ``exclude`` wins over rules and
    ``include``, rules win over ``include`` (which reads an uncovered tensor as ``(out, in, ...)``).
    ``tied``: ``"dense"`` or ``"mask"`` for a tensor that a masking and an excluding name share.
    Raises :class:`UnmaskableParameterError` naming every uncovered parameter with 2+ dimensions.
    """
    if tied not in TIED_MODES:
        raise ValueError(f"unknown tied mode {tied!r}; valid: {', '.join(TIED_MODES)}")
    inc, exc = tuple(include), tuple(exclude)
    modules = dict(model.named_modules(remove_duplicate=False))
    groups: dict[int, list[str]] = {}
    tensors: dict[int, torch.Tensor] = {}
    for full, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(full)
        tensors[id(param)] = param
    targets: list[MaskTarget] = []
    excluded: list[dict[str, Any]] = []
    ties: list[dict[str, Any]] = []
    unknown: list[tuple[str, nn.Module, torch.Tensor]] = []
    small = total = 0
    for key, names in groups.items():
        p = tensors[key]
        total += p.numel()
        if p.dim() < 2:
            small += p.numel()
            continue
        decisions = [(n, *_decide(modules[_split(n)[0]], n, _split(n)[1], inc, exc)) for n in names]
        masking = [d for d in decisions if d[1] == "mask"]
        excluding = [d for d in decisions if d[1] == "exclude"]
        user_excluded = any(d[2] == "excluded by name" for d in excluding)
        if masking and excluding:
            keep = user_excluded or tied == "dense"
            ties.append({"names": list(names), "masked_as": None if keep else masking[0][0],
                         "resolution": "kept dense: tied to " + ", ".join(f"{d[0]} ({d[2]})" for d in excluding)
                         if keep else "masked (tied='mask'): " + ", ".join(d[0] for d in excluding)
                         + " share the mask"})
            if keep:
                excluded.append({"name": names[0], "shape": list(p.shape), "params": p.numel(),
                                 "reason": f"tied to {masking[0][0]} ({masking[0][2]}); kept dense"})
                continue
        elif len(names) > 1:
            ties.append({"names": list(names), "masked_as": masking[0][0] if masking else None,
                         "resolution": "one tensor, masked and counted once" if masking else "kept dense once"})
        if masking:
            full, _, why, transposed = masking[0]
            mod_name, pname = _split(full)
            name = mod_name if pname == "weight" else full
            targets.append(MaskTarget(name, modules[mod_name], pname, why, transposed,
                                      tuple(n for n in names if n != full)))
        elif excluding:
            excluded.append({"name": names[0], "shape": list(p.shape), "params": p.numel(), "reason": excluding[0][2]})
        else:
            unknown.append((names[0], modules[_split(names[0])[0]], p))
    if unknown:
        raise _unknown_error(unknown)
    return MaskScope(tuple(targets), tuple(excluded), tuple(ties), small, total)


__all__ = [
    "PARAM_RULES", "TIED_MODES", "MaskScope", "MaskTarget", "ParamRule", "UnmaskableParameterError",
    "mask_scope", "register_param_rule", "unregister_param_rule",
]
