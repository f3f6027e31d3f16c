"""Shared pytest configuration."""
from pathlib import Path

import pytest

# --ble-address / --serial-port: hardware-in-loop tests against a real wearable.
pytest_plugins = ["conftest_hw"]

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA
