"""Shared pytest configuration: Hypothesis profiles and the ``gpu`` marker."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# "ci": deterministic (derandomized) and bounded, so the suite gives the same answer every run.
settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True, scope="session")
def _data_digest_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Data-file digests are cached in a folder of the test session, not the user's ~/.cache."""
    os.environ.setdefault("ERTRAIN_CACHE_DIR", str(tmp_path_factory.mktemp("ertrain-cache")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return  # no need to import torch just to collect theory tests
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in gpu_items:
        item.add_marker(skip_gpu)
