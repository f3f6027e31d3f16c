"""pytest plugin: options for tests against real wearables (skipped by default).

Enable from tests/conftest.py with ``pytest_plugins = ["conftest_hw"]``, then::

    pytest tests/test_transport_hw.py --ble-address AA:BB:CC:DD:EE:FF
    pytest tests/test_transport_hw.py --serial-port /dev/ttyACM0 --serial-baud 921600
"""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("glutebridge hardware")
    group.addoption("--ble-address", default=None,
                    help="run hardware tests against the BLE wearable at this address")
    group.addoption("--serial-port", default=None,
                    help="run hardware tests against the wearable on this serial port")
    group.addoption("--serial-baud", type=int, default=921600, help="baud for --serial-port")


@pytest.fixture
def ble_address(request):
    addr = request.config.getoption("--ble-address", default=None)
    if not addr:
        pytest.skip("needs a real wearable: pass --ble-address AA:BB:CC:DD:EE:FF")
    return addr


@pytest.fixture
def serial_port(request):
    port = request.config.getoption("--serial-port", default=None)
    if not port:
        pytest.skip("needs a real wearable: pass --serial-port /dev/ttyACM0")
    return port, request.config.getoption("--serial-baud", default=921600)
