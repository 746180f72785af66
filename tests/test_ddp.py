"""Multi-process training: 2 gloo processes on CPU equal 1 process with the same global batch.

The workers get the environment ``torchrun`` sets (RANK, WORLD_SIZE, MASTER_ADDR, ...) and are
forked from the test process, so they start without re-importing torch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.rundir import CHECKPOINT, read_checkpoint
from ertrain.runner import run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, config_json: str, runs_dir: str) -> None:
    # the environment torchrun gives each process
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    try:
        run(TrainConfig.from_json(config_json), runs_dir, progress=False)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    # 150 examples in global batches of 32: the last batch (22) is split 11/11; masks at density 0.3
    cfg = TrainConfig(model="mlp", dataset="teacher", data_options={"n_train": 150, "n_test": 64},
                      model_options={"hidden": [16]}, density_scheme="balanced", density=0.3, epochs=2,
                      batch_size=32, lr=0.1, device="cpu")
    single = run(cfg, tmp_path / "single", progress=False)  # also imports everything before the fork

    ctx = multiprocessing.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, cfg.to_json(), str(tmp_path / "ddp"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    ddp_dir = tmp_path / "ddp" / cfg.run_hash()
    ddp = json.loads((ddp_dir / "result.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["global_step"] == single["global_step"] == 2 * 5
    assert ddp["density"] == single["density"]
    assert ddp["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=1 / 64 + 1e-12)
    a = read_checkpoint(ddp_dir / CHECKPOINT)
    b = read_checkpoint(tmp_path / "single" / cfg.run_hash() / CHECKPOINT)
    for name, mask in b["masks"].items():
        assert torch.equal(a["masks"][name], mask), name
    for name, w in b["model"].items():
        torch.testing.assert_close(a["model"][name], w, rtol=1e-5, atol=1e-6)
    # pruned weights stayed exactly zero in the DDP run
    for name, mask in a["masks"].items():
        assert torch.count_nonzero(a["model"][name + ".weight"][~mask]) == 0
    ddp_lines = [json.loads(s) for s in (ddp_dir / "metrics.jsonl").read_text().splitlines()]
    one_dir = tmp_path / "single" / cfg.run_hash()
    one_lines = [json.loads(s) for s in (one_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in ddp_lines] == pytest.approx([r["train_loss"] for r in one_lines], rel=1e-5)
