import dataclasses
import json

import pytest
from toy_recipe import Inner, ToyConfig

from selftaught.core import ConfigError
from selftaught.core import config as cfglib


def test_round_trip_through_json():
    cfg = ToyConfig(seed=3, steps=7, lr=0.5, inner=Inner(width=9), tags=("x",))
    data = json.loads(json.dumps(cfglib.to_dict(cfg)))
    assert data["inner"] == {"width": 9}
    assert data["tags"] == ["x"]
    assert cfglib.from_dict(ToyConfig, data) == cfg


def test_int_is_accepted_for_float_fields():
    cfg = cfglib.from_dict(ToyConfig, {"lr": 1})
    assert isinstance(cfg.lr, float) and cfg.lr == 1.0


def test_unknown_field_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown field.*'stpes'"):
        cfglib.from_dict(ToyConfig, {"stpes": 3})


def test_validate_raises_with_message():
    with pytest.raises(ConfigError, match="steps must be positive, got 0"):
        cfglib.validate(ToyConfig(steps=0))


def test_replace_with_dotted_names():
    cfg = cfglib.replace(ToyConfig(), **{"inner.width": 5, "steps": 2})
    assert cfg.inner.width == 5 and cfg.steps == 2
    assert dataclasses.is_dataclass(cfg.inner)


def test_unknown_fields_that_moved_into_a_nested_config_say_where():
    """A stored config written before fields moved into a nested config (`inner`) names
    the new place; other unknown fields still list the known ones."""
    with pytest.raises(ConfigError, match=r"\['width'\] for ToyConfig \(config\); they are now "
                       r"under config\.inner .*start a new run"):
        cfglib.from_dict(ToyConfig, {"width": 3}, where="config")
    with pytest.raises(ConfigError, match="known: "):
        cfglib.from_dict(ToyConfig, {"width": 3, "stpes": 1})
