"""The sheet-mark text: what is printed decodes back to the same facts, and noise does not."""

import pytest

from appliance.core.markcode import Mark, decode, encode


def test_round_trip():
    text = encode("0aB3-x_9", 2, 3, 41)
    assert text == "NL1:0aB3-x_9:2:3:41"
    assert decode(text) == Mark("0aB3-x_9", 2, 3, 41)


@pytest.mark.parametrize("text", ["", "NL1:a:0:3:1", "NL1:a:4:3:1", "NL2:a:1:1:1", "NL1:../x:1:1:1",
                                  "NL1:a:1:1", "hello", "NL1:a:1:1:1:extra"])
def test_noise_is_not_a_mark(text):
    assert decode(text) is None


@pytest.mark.parametrize("args", [("../x", 1, 1, 1), ("a", 0, 1, 1), ("a", 2, 1, 1), ("x" * 200, 1, 1, 1)])
def test_encode_refuses_what_could_not_be_read_back(args):
    with pytest.raises(ValueError):
        encode(*args)
