"""Standalone export of a finished run: the sparse network out of the training harness.

:func:`export_run` loads a run directory with :func:`ertrain.trainer.load_run`, folds the masks
into the weights (pruned entries exactly ``+0.0``; the mask buffers are dropped, so the model is
plain torch) and writes it in one of :data:`EXPORT_FORMATS`.  None of the files needs
``ertrain`` to load:

``torch``        ``torch.export`` ExportedProgram (the ``.pt2`` archive; batch dimension dynamic),
                 loaded with ``torch.export.load(open(path, "rb")).module()`` (a file object, so
                 any file name works).  Plain torch, no TorchScript.
``torchscript``  ``torch.jit.trace`` of the model, loaded with ``torch.jit.load(path)`` (torch now
                 deprecates TorchScript in favour of ``torch.export``; kept for older runtimes).
``onnx``         ONNX (opset :data:`ONNX_OPSET`, input ``"input"``, output ``"logits"``, dynamic
                 batch), run with ``onnxruntime.InferenceSession(path)``.
``safetensors``  the state dict (weights, biases, norm statistics), loaded with
                 ``safetensors.torch.load_file(path)``; the architecture is described in the
                 sidecar (``model``, ``model_kwargs``, ``config``).  ``packed=True`` stores the
                 compact encoding of :func:`ertrain.sparse.pack_state_dict` instead (decode with
                 :func:`ertrain.sparse.load_packed`, or by hand from the documented layout).

Edge-popup (strong lottery ticket) runs end with the run's ``Masking`` holding the final mask and
the weights equal to the fixed random weights times that mask, so their export is the found
subnetwork of the random weights.

The sidecar ``<FILE>.json`` holds the format, the run's config, its test accuracy and realised
density, every conv/linear layer's shape, density and non-zero count, the input shape, how to
load the file, and the check: before anything is kept, the written file is loaded back the way a
user would and its outputs on a seeded standard-normal batch are compared with the trained
model's; the export fails (and leaves no file) unless ``|exported - trained| <= atol + rtol *
|trained|`` elementwise (:data:`ATOL`, :data:`RTOL`).  For ``safetensors`` the state dict read
back must equal the folded model's exactly.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ertrain.models import mask_targets
from ertrain.sparse import atomic_write, fold_masks, save_packed

#: Tolerances of the export check (float32 inference, different kernels / summation orders).
ATOL = 1e-4
RTOL = 1e-4

#: ONNX opset written by the ``onnx`` format.
ONNX_OPSET = 17

#: Names of the ONNX graph's input and output.
ONNX_INPUT, ONNX_OUTPUT = "input", "logits"


@dataclass(frozen=True)
class ExportFormat:
    """How to write one format (``write(model, example_input, path)``), how to load it back without
    ``ertrain`` for the check (``load(path)`` returns a callable; None: compare state dicts), and
    the user's one-line recipe for the sidecar."""

    write: Callable[[nn.Module, torch.Tensor, str], None]
    load: Callable[[str], Callable[[torch.Tensor], torch.Tensor]] | None
    how_to_load: str


def _write_torch(model: nn.Module, example: torch.Tensor, path: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()  # serialised in memory, written by Python: a full disk is an OSError, not torch's error
    torch.export.save(program, buffer)
    _write_bytes(path, buffer.getvalue())


def _write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` from Python, so that a failed write (a full disk) raises ``OSError``."""
    with open(path, "wb") as fh:
        fh.write(data)


def _load_torch(path: str) -> Callable[[torch.Tensor], torch.Tensor]:
    with open(path, "rb") as fh:
        return torch.export.load(fh).module()


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, (example,), check_trace=False)
        buffer = io.BytesIO()  # torch's own file writer aborts the process when the disk is full
        torch.jit.save(traced, buffer)
    _write_bytes(path, buffer.getvalue())


def _load_torchscript(path: str) -> Callable[[torch.Tensor], torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(path)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), path, dynamo=False, opset_version=ONNX_OPSET,
            input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
        )


def _load_onnx(path: str) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def forward(x: torch.Tensor) -> torch.Tensor:
        (y,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: x.detach().cpu().numpy()})
        return torch.from_numpy(y)

    return forward


def _write_safetensors(model: nn.Module, example: torch.Tensor, path: str) -> None:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_bytes(path, save(state, metadata={"format": "pt"}))  # written by Python: a full disk is an OSError


#: Registry of export formats (name -> :class:`ExportFormat`); extend with :func:`register_export_format`.
EXPORT_FORMATS: dict[str, ExportFormat] = {}


def register_export_format(name: str, fmt: ExportFormat) -> None:
    """Add (or replace) export format ``name``."""
    EXPORT_FORMATS[name] = fmt


register_export_format("torch", ExportFormat(
    _write_torch, _load_torch,
    "import torch; model = torch.export.load(open(PATH, 'rb')).module(); logits = model(x)"))
register_export_format("torchscript", ExportFormat(
    _write_torchscript, _load_torchscript,
    "import torch; model = torch.jit.load(PATH); logits = model(x)"))
register_export_format("onnx", ExportFormat(
    _write_onnx, _load_onnx,
    "import onnxruntime as ort; s = ort.InferenceSession(PATH); "
    f"logits = s.run(['{ONNX_OUTPUT}'], {{'{ONNX_INPUT}': x_numpy}})[0]"))
register_export_format("safetensors", ExportFormat(
    _write_safetensors, None,
    "from safetensors.torch import load_file; state = load_file(PATH)  "
    "# then model.load_state_dict(state) for the architecture in 'model'/'model_kwargs'"))


def input_shape(model_kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The per-example input shape of a model built with ``model_kwargs`` (``(C, S, S)`` or ``(in_features,)``)."""
    if "in_channels" in model_kwargs and "input_size" in model_kwargs:
        size = int(model_kwargs["input_size"])
        return (int(model_kwargs["in_channels"]), size, size)
    if "in_features" in model_kwargs:
        return (int(model_kwargs["in_features"]),)
    raise ValueError(f"cannot tell the input shape from model_kwargs {model_kwargs!r}")


def layer_report(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> dict[str, dict[str, Any]]:
    """Name -> shape, density (of the mask; 1.0 if unmasked) and non-zero weights of every maskable parameter
    (:func:`ertrain.models.mask_targets`: each conv/linear weight of the registered models)."""
    out: dict[str, dict[str, Any]] = {}
    for target in mask_targets(model):
        w = target.weight.detach()
        mask = (masks or {}).get(target.name)
        density = 1.0 if mask is None else int(mask.count_nonzero()) / mask.numel()
        out[target.name] = {"shape": list(w.shape), "density": density, "nonzero": int(w.count_nonzero())}
    return out


def _single_input(model: nn.Module) -> bool:
    params = inspect.signature(model.forward).parameters.values()
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


@torch.no_grad()
def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    *,
    packed: bool = False,
    check_batch: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Export the finished run in ``run_dir`` as ``fmt`` to ``out``; write and return the sidecar (``<out>.json``).

    See the module docstring for the formats and the check.  ``packed`` (``safetensors`` only)
    writes the compact sparse encoding.  Raises ``ValueError`` for an unknown format, a run
    without ``result.json``, or a model with more than one input for a graph format.
    """
    from ertrain.rundir import RunDir
    from ertrain.runner import load_run

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    if packed and fmt != "safetensors":
        raise ValueError(f"packed storage is for the safetensors format, got format {fmt!r}")
    if not 1 <= check_batch <= MAX_CHECK_BATCH:
        raise ValueError(f"check_batch must be in [1, {MAX_CHECK_BATCH}], got {check_batch!r}")
    spec = EXPORT_FORMATS[fmt]
    run_dir, out = Path(run_dir), Path(out)
    _check_out(out)
    if RunDir(run_dir).read_config() is None:
        raise ValueError(f"{run_dir}: not a run directory (no config.json holding a JSON object)")
    if RunDir(run_dir).read_result() is None:
        raise ValueError(f"{run_dir}: the run is not finished (no readable result.json)")
    config, model, masking, result = load_run(run_dir)
    masks = {k: v.detach().cpu() for k, v in masking.masks.items()} if masking is not None else None
    plain = fold_masks(model, masks).cpu().eval()
    model_kwargs = dict(result.get("model_kwargs") or {})
    single = _single_input(plain)
    if not single and spec.load is not None:
        raise ValueError(f"model {config.model!r} takes more than one input; export it with --format safetensors")
    example = torch.empty(0)
    if single:
        gen = torch.Generator().manual_seed(seed)
        example = torch.randn((check_batch, *input_shape(model_kwargs)), generator=gen)
    check: dict[str, Any] = {"batch": check_batch if single else 0, "seed": seed, "atol": ATOL, "rtol": RTOL}

    def write_checked(tmp: str) -> None:
        if packed:
            save_packed(tmp, plain.state_dict(), metadata={"format": "pt"})
        else:
            spec.write(plain, example, tmp)
        check.update(_check(tmp, fmt, packed, model if single else plain, example))

    atomic_write(out, write_checked)
    sidecar = _sidecar(out, fmt, packed, spec, config, result, plain, masks, single, check)
    text = json.dumps(sidecar, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(sidecar_path(out), lambda tmp: Path(tmp).write_text(text))
    return sidecar


def _sidecar(out: Path, fmt: str, packed: bool, spec: ExportFormat, config: Any, result: dict[str, Any],
             plain: nn.Module, masks: dict[str, torch.Tensor] | None, single: bool,
             check: dict[str, Any]) -> dict[str, Any]:
    """The sidecar JSON of an export: how to load the file, the run it came from, its layers and the check."""
    from ertrain import __version__

    model_kwargs = dict(result.get("model_kwargs") or {})
    load = (spec.how_to_load if not packed
            else "from ertrain.sparse import load_packed; state = load_packed(PATH)").replace("PATH", repr(out.name))
    return {
        "format": fmt, "packed": packed, "file": out.name, "bytes": out.stat().st_size, "load": load,
        "run_hash": result.get("run_hash", config.run_hash()), "model": config.model, "model_kwargs": model_kwargs,
        "input_shape": list(input_shape(model_kwargs)) if single else None, "method": config.method,
        "test_accuracy": result.get("test_accuracy"), "density": result.get("density"),
        "layers": layer_report(plain, masks), "config": json.loads(config.to_json()), "check": check,
        "torch_version": torch.__version__, "ertrain_version": __version__,
    }


#: Largest batch of the output check (its inputs are held in memory at once).
MAX_CHECK_BATCH = 4096


def _check_out(out: Path) -> None:
    """``out`` must be a file path in an existing, writable folder (never a folder itself)."""
    if str(out) in ("", "."):
        raise ValueError("--out must name a file, got an empty path")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: folder {str(parent)!r} is not writable")


def sidecar_path(out: str | Path) -> Path:
    """The sidecar JSON of an exported file: ``<out>.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def _check(path: str, fmt: str, packed: bool, model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """Load ``path`` back and compare with ``model`` (its state dict for safetensors, else its outputs on ``example``).

    Raises ``RuntimeError`` if they differ.
    """
    if fmt == "safetensors":
        from safetensors.torch import load_file

        from ertrain.sparse import load_packed

        state = load_packed(path) if packed else load_file(path)
        expected = fold_masks(model).state_dict()
        bad = [k for k in expected if k not in state or not torch.equal(state[k], expected[k].cpu())]
        if bad or set(state) != set(expected):
            raise RuntimeError(f"the written state dict differs from the model's at {bad or sorted(set(state))}")
        return {"kind": "state dict equal", "max_abs_diff": 0.0, "passed": True}
    spec = EXPORT_FORMATS[fmt]
    assert spec.load is not None
    expected = model(example)
    got = spec.load(path)(example)
    diff = (got.float() - expected.float()).abs()
    ok = bool((diff <= ATOL + RTOL * expected.abs()).all())
    if not ok:
        raise RuntimeError(f"exported {fmt} model differs from the trained one: max |diff| {float(diff.max()):.3g}")
    return {"kind": "outputs on a seeded standard-normal batch", "max_abs_diff": float(diff.max()), "passed": ok}


__all__ = [
    "ATOL", "EXPORT_FORMATS", "ExportFormat", "ONNX_INPUT", "ONNX_OPSET", "ONNX_OUTPUT", "RTOL", "export_run",
    "input_shape", "layer_report", "register_export_format", "sidecar_path",
]
