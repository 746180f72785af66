"""The HTML report: self-contained (tables, embedded PNGs, nothing fetched), and it renders in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from ertrain.cli import main

#: (scheme, sparsity, seed) -> test accuracy; realised densities equal the requested ones except one run.
ACC = {
    ("erk", 0.9, 0): 0.90, ("erk", 0.9, 1): 0.92, ("erk", 0.9, 2): 0.91,
    ("erk", 0.99, 0): 0.70, ("erk", 0.99, 1): 0.74,
    ("uniform", 0.9, 0): 0.88, ("uniform", 0.9, 1): 0.86,
    ("uniform", 0.99, 0): 0.50, ("uniform", 0.99, 1): 0.56,
}
OFF = ("uniform", 0.99, 1)  # realises 2% more than it asked for


def _runs(tmp_path: Path) -> Path:
    from ertrain.config import TrainConfig

    runs = tmp_path / "runs"
    for key, acc in ACC.items():
        scheme, sparsity, seed = key
        density = round(1 - sparsity, 12)
        config = TrainConfig(model="mlp", dataset="digits", density_scheme=scheme, density=density, seed=seed)
        run_dir = runs / config.run_hash()
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        realised = density * (1.02 if key == OFF else 1.0)
        result = {"run_hash": config.run_hash(), "test_accuracy": acc, "density": realised, "seed": seed}
        (run_dir / "result.json").write_text(json.dumps(result))
    return runs


class _Page(HTMLParser):
    """Tables (rows of cell texts), image sources and every other tag of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _half(values: list[float]) -> float:
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    return 100 * (hi - lo) / 2


@pytest.fixture
def report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    runs = _runs(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--table", "ratios", "--html", str(out), "--no-save"]) == 0
    assert f"HTML report: {out}" in capsys.readouterr().err
    return out


def test_html_report_holds_the_tables_and_embedded_figures(report: Path) -> None:
    page = _Page()
    page.feed(report.read_text())
    results, density, runs = page.tables
    # the results table: mean ± 95% CI (Student t, by scipy's interval), best per column, † on the off run's cell
    assert results[0] == ["density_scheme", "protocol", "0.9", "0.99"]
    # each cell states its number of runs
    assert results[1] == ["erk", "exact", f"91.00 ± {_half([0.90, 0.92, 0.91]):.2f} (n=3)",
                          f"72.00 ± {_half([0.70, 0.74]):.2f} (n=2)"]
    assert results[2] == ["uniform", "exact", f"87.00 ± {_half([0.88, 0.86]):.2f} (n=2)",
                          f"53.00 ± {_half([0.50, 0.56]):.2f} (n=2) †"]
    best = [a.get("class") for t, a in page.tags if t == "td" and "best" in (a.get("class") or "")]
    assert len(best) == 2
    # the density check: requested vs realised per row, the off row marked
    assert density[0][:7] == ["density_scheme", "protocol", "sparsity", "requested", "realised", "realised range",
                              "max rel. diff"]
    rows = {(r[0], r[2]): r[3:] for r in density[1:]}
    assert rows[("uniform", "0.99")] == ["0.01", "0.0101", "0.01 – 0.0102", "2.00%", "†"]
    assert rows[("erk", "0.9")] == ["0.1", "0.1", "0.1 – 0.1", "0.00%", ""]
    assert len(runs) == 1 + len(ACC)
    # self-contained: two PNG figures inline, nothing loaded from elsewhere
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.width > 200 and image.height > 200
    assert not [t for t, a in page.tags if t in ("script", "link", "iframe")]
    assert not [a for _, a in page.tags if any(str(v).startswith(("http:", "https:", "//")) for v in a.values())]


def test_html_path_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _runs(tmp_path)
    for bad, message in ((tmp_path / "report.txt", "needs a .html file name"),
                         (tmp_path / "missing" / "r.html", "does not exist")):
        assert main(["report", str(runs), "--html", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
        assert not bad.exists()
    assert not (tmp_path / "missing").exists() and not (runs / "results.csv").exists()  # nothing was written


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true needs chromium for the HTML screenshot test (apt-get install chromium)")
    pytest.skip("chromium not installed (apt-get install chromium)")


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
        report.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1200)
    # not blank: text, table borders and plots give many dark pixels and a large spread
    assert pixels.std() > 20.0
    assert (pixels < 128).mean() > 0.01
