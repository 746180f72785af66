"""What a run says about the paper's code: the code bugs it reproduces and the code paths that do not exist.

``paper-code`` reproduces two bugs of the paper's code because they shaped its published numbers
(``docs/protocol.md``): the flow repair that writes into a copy (flow repair mode ``paper-code``)
and edge-popup's row-index subnetwork (edge-popup option ``subnet="paper-code"``).  A run that
selects either, under any protocol, says so in one line and lists it in ``result.json``
(``code_bugs_reproduced``).  Runs under ``paper-code`` for which the code has no path (SET, edge-popup
beyond CIFAR-10, ER-SynFlow's masks) get one warning line each and ``code_path_warnings``.

Each note is a registered check ``fn(config) -> bool`` (:data:`CODE_NOTES`), so a new one is a
function, not a branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ertrain.config import TrainConfig

#: Kinds of note and the ``result.json`` key that lists them.
KINDS = {"bug": "code_bugs_reproduced", "no_code_path": "code_path_warnings"}


@dataclass(frozen=True)
class CodeNote:
    """One note: its name (the ``result.json`` entry), kind (:data:`KINDS`), the line printed, and when it applies."""

    name: str
    kind: str
    message: str
    applies: Callable[[TrainConfig], bool]


def _paper_code(config: TrainConfig) -> bool:
    return bool(config.protocol == "paper-code")


#: Every note, in the order they are printed.
CODE_NOTES: tuple[CodeNote, ...] = (
    CodeNote(
        "flow_repair_contiguous_copy", "bug",
        "flow repair 'paper-code' reproduces the paper's code's bug (ER_DST/sparselearning/core.py:231): a conv "
        "layer with two or more input channels without an outgoing edge keeps them empty",
        lambda c: c.flow_repair == "paper-code",
    ),
    CodeNote(
        "edgepopup_row_index_subnet", "bug",
        "edge-popup subnet 'paper-code' reproduces the paper's code's bug (ER_SLT/resnet_new.py:44): only the "
        "first c_out entries of each layer are binarised, every other weight is multiplied by its |score|",
        lambda c: c.method == "edgepopup" and c.method_options.get("subnet") == "paper-code",
    ),
    CodeNote(
        "set_grows_by_gradient", "no_code_path",
        "the paper's code cannot run SET: it always grows by gradient (ER_DST/sparselearning/core.py:1116); "
        "paper-code gives SET the RiGL run's settings with random growth",
        lambda c: _paper_code(c) and c.method == "set",
    ),
    CodeNote(
        "edgepopup_cifar10_only", "no_code_path",
        "the paper's edge-popup code loads CIFAR-10 only (ER_SLT/cifar_main.py:200); other datasets (Table 22) "
        "use its CIFAR-10 settings",
        lambda c: _paper_code(c) and c.method == "edgepopup" and c.dataset != "cifar10",
    ),
    CodeNote(
        "er_synflow_external_masks", "no_code_path",
        "the paper's code loads ER-SynFlow's masks from an external path and does not record SynFlow's "
        "iteration count; ertrain computes them (ertrain.scores)",
        lambda c: _paper_code(c) and c.density_scheme == "synflow",
    ),
)


def code_notes(config: TrainConfig) -> list[CodeNote]:
    """The notes that apply to ``config``."""
    return [note for note in CODE_NOTES if note.applies(config)]


def notes_record(config: TrainConfig) -> dict[str, Any]:
    """``result.json``'s keys: for each kind with a note, the names of its notes (``{}`` when none applies)."""
    out: dict[str, list[str]] = {}
    for note in code_notes(config):
        out.setdefault(KINDS[note.kind], []).append(note.name)
    return out


def note_lines(config: TrainConfig) -> list[str]:
    """One line per note, as printed on stderr at the start of a run."""
    label = {"bug": "reproduces a code bug", "no_code_path": "no code path"}
    return [f"ertrain: {label[note.kind]} [{note.name}]: {note.message}" for note in code_notes(config)]


__all__ = ["CODE_NOTES", "KINDS", "CodeNote", "code_notes", "note_lines", "notes_record"]
