"""Progress of a ``fit`` on stderr: tqdm bars on a terminal, one line per epoch otherwise.

``progress=False`` is silent; ``None`` (the default) and ``True`` show bars when stderr is a
terminal and otherwise print one concise line per finished epoch, e.g.
``static epoch 3/20 loss 0.412 acc 0.873 test 0.861 2.1s`` (log files stay readable).  Only rank 0
reports.
"""

from __future__ import annotations

import sys
from typing import IO, Any


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def epoch_line(desc: str, epoch: int, epochs: int, record: dict[str, Any]) -> str:
    """The one-line summary of a finished epoch (``epoch`` counts from 0 within the fit)."""
    head = f"{desc} " if desc else ""
    return (f"{head}epoch {epoch + 1}/{epochs} loss {record['train_loss']:.4g} acc {_fmt(record['train_accuracy'])} "
            f"test {_fmt(record['test_accuracy'])} {record['time_s']:.1f}s")


class Silent:
    """No output (``progress=False``, ranks other than 0)."""

    def start_epoch(self, epoch: int) -> None:
        """An epoch begins (``epoch`` counts from 0 within the fit)."""

    def step(self) -> None:
        """One optimizer step is done."""

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """An epoch ended with ``record`` (the loop's epoch record)."""

    def close(self) -> None:
        """The fit ended (or failed)."""


class Lines(Silent):
    """One line per finished epoch on ``stream`` (stderr when it is not a terminal)."""

    def __init__(self, desc: str, epochs: int, stream: IO[str]) -> None:
        self.desc, self.epochs, self.stream = desc, epochs, stream

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.stream.write(epoch_line(self.desc, epoch, self.epochs, record) + "\n")
        self.stream.flush()


class Bars(Silent):
    """A tqdm bar over the epochs and a transient one over each epoch's steps (on a terminal)."""

    def __init__(self, desc: str, epochs: int, start: int, steps: int, stream: IO[str]) -> None:
        from tqdm.auto import tqdm

        self._tqdm, self.epochs, self.steps, self.stream = tqdm, epochs, steps, stream
        self.bar = tqdm(total=epochs, initial=start, desc=desc or "train", unit="epoch", file=stream,
                        dynamic_ncols=True)
        self.step_bar: Any = None

    def start_epoch(self, epoch: int) -> None:
        self.step_bar = self._tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                                   leave=False, file=self.stream, dynamic_ncols=True)

    def step(self) -> None:
        self.step_bar.update(1)

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self._close_steps()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", acc=_fmt(record["train_accuracy"]),
                             test_acc=_fmt(record["test_accuracy"]), s_per_epoch=f"{record['time_s']:.2f}")

    def _close_steps(self) -> None:
        if self.step_bar is not None:
            self.step_bar.close()
            self.step_bar = None

    def close(self) -> None:
        self._close_steps()
        self.bar.close()


def progress_for(
    enabled: bool | None, rank: int, *, desc: str, epochs: int, start: int, steps: int, stream: IO[str] | None = None
) -> Silent:
    """The display of one fit: silent, bars on a terminal, or lines (see the module docstring)."""
    stream = sys.stderr if stream is None else stream
    if enabled is False or rank != 0:
        return Silent()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return Bars(desc, epochs, start, steps, stream)
    return Lines(desc, epochs, stream)


__all__ = ["Bars", "Lines", "Silent", "epoch_line", "progress_for"]
