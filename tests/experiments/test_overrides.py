"""``--set key=value`` parsing against config dataclasses."""

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal

import pytest

from memcim import ConfigError
from memcim.experiments.overrides import apply_overrides, split_assignment


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, kw_only=True)
class Cfg:
    n: int = 1
    lr: float = 0.1
    flag: bool = False
    name: str = "a"
    path: Path = Path(".")
    mode: Literal["x", "y"] = "x"
    color: Color = Color.RED
    limit: float | None = None
    times: tuple[float, ...] = (1.0,)
    pair: tuple[int, str] = (0, "z")

    def __post_init__(self):
        if self.n < 0:
            raise ConfigError(f"Cfg.n={self.n} is invalid: must be >= 0")


def test_every_supported_type_parses():
    cfg = apply_overrides(
        Cfg(),
        {
            "n": "3", "lr": "1e-3", "flag": "yes", "name": "b", "path": "/tmp/x",
            "mode": "y", "color": "BLUE", "limit": "2.5", "times": "1,3600;86400",
            "pair": "4,q",
        },
    )  # fmt: skip
    expected = Cfg(
        n=3, lr=1e-3, flag=True, name="b", path=Path("/tmp/x"), mode="y", color=Color.BLUE,
        limit=2.5, times=(1.0, 3600.0, 86400.0), pair=(4, "q"),
    )  # fmt: skip
    assert cfg == expected
    assert apply_overrides(Cfg(limit=1.0), {"limit": "none"}).limit is None
    assert apply_overrides(Cfg(), {"color": "blue"}).color is Color.BLUE


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['nn'\].*valid keys: n, lr"):
        apply_overrides(Cfg(), {"nn": "1"})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("n", "1.5", "n='1.5' is invalid: expected int"),
        ("lr", "fast", "expected float"),
        ("flag", "maybe", "must be true or false"),
        ("mode", "z", r"must be one of \['x', 'y'\]"),
        ("color", "green", "must be one of"),
        ("pair", "1", "needs 2 values"),
        ("n", "-1", "Cfg.n=-1 is invalid"),  # the config's own validation
    ],
)
def test_bad_values_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Cfg(), {key: value})


def test_assignment_syntax():
    assert split_assignment("a=b=c") == ("a", "b=c")
    with pytest.raises(ConfigError, match="key=value"):
        split_assignment("novalue")
