"""Source URLs: bad numbers in the query string give one clear ConfigError."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.sources import make_transport


@pytest.mark.parametrize("url, msg", [
    ("sim://demo?speed=abc", "speed='abc' is not a number"),
    ("sim://demo?seed=1.5", "seed='1.5' is not a whole number"),
    ("sim://demo?speed=inf", "must be finite"),
    ("replay://x.gbrec?speed=fast", "speed='fast' is not a number"),
])
def test_bad_numbers_in_urls(url, msg):
    with pytest.raises(ConfigError, match=msg):
        make_transport(url)


def test_good_numbers_are_used():
    t = make_transport("sim://demo?speed=4&seed=3")
    assert t.speed == 4.0
