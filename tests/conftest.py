"""Shared test helpers: where the shared corpus lives, and skipping that CI turns into failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    """The shared corpus: $TTRD_SHARED, else ../shared beside the checkout, else /work/shared."""
    if "TTRD_SHARED" in os.environ:
        return Path(os.environ["TTRD_SHARED"])
    beside = ROOT.parent / "shared"
    return beside if beside.is_dir() else Path("/work/shared")


SHARED = _shared()


def require(condition: bool, reason: str) -> None:
    """Skip the calling test when `condition` is false; under TTRD_REQUIRE_ALL=1 (CI) fail instead."""
    if condition:
        return
    if os.environ.get("TTRD_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def shared() -> Path:
    require(SHARED.is_dir(), f"the shared corpus is not at {SHARED}")
    return SHARED
