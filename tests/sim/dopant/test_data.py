"""The JSONL experiment format: round trip and error messages that name the line."""

import json

import jax
import numpy as np
import pytest

from selftaught.core.errors import DataError
from selftaught.sim.dopant import data, rates, sim

GOOD = {"context": [0.9, -0.1, 60.0, 50.0], "dwell_s": 0.5, "moved": True, "neighbour": 2}


def test_round_trip(tmp_path):
    obs = sim.explore(rates.ground_truth("offaxis"), jax.random.PRNGKey(0), num_sessions=4,
                      steps=16, radius=2.2, dwell_range=(0.3, 3.0), voltage_range=(55, 65),
                      current_range=(30, 70))
    path = data.write_experiments(tmp_path / "exp.jsonl", obs)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == data.header() and len(lines) == 65
    back = data.read_experiments(path)
    np.testing.assert_allclose(back.context, obs.context, atol=1e-5)
    np.testing.assert_allclose(back.dwell, obs.dwell, atol=1e-5)
    np.testing.assert_array_equal(back.moved, obs.moved)
    np.testing.assert_array_equal(back.neighbour, obs.neighbour)
    assert back.moved.any() and not back.moved.all()


def _write(tmp_path, records, header=None):
    path = tmp_path / "bad.jsonl"
    head = json.dumps(header if header is not None else data.header())
    body = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join([head, *body]) + "\n")
    return path


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"context": [0.9, -0.1, 60.0, 50.0], "dwell_s": 0.5,', "not valid JSON"),
        ({**GOOD, "neighbour": None}, "moved is true so 'neighbour' must be 0, 1 or 2"),
        ({**GOOD, "moved": False}, "moved is false but 'neighbour' is 2"),
        ({**GOOD, "neighbour": 3}, "must be 0, 1 or 2, got 3"),
        ({**GOOD, "dwell_s": 0}, "'dwell_s' must be a finite number > 0"),
        ({**GOOD, "dwell_s": -1.0}, "'dwell_s' must be a finite number > 0"),
        ({**GOOD, "context": [0.9, -0.1]}, "'context' must be a list of 4 finite numbers"),
        ('{"context": [NaN, 0, 60, 50], "dwell_s": 1, "moved": false, "neighbour": null}',
         "finite numbers"),
        ({**GOOD, "context": [0.9, -0.1, 0.0, 50.0]}, "voltage_kV must be > 0"),
        ({**GOOD, "moved": "yes"}, "'moved' must be true or false"),
        ({k: v for k, v in GOOD.items() if k != "dwell_s"}, "missing ['dwell_s']"),
        ({**GOOD, "outcome": 1}, "unknown ['outcome']"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_record_names_file_and_line(tmp_path, record, message):
    path = _write(tmp_path, [GOOD, GOOD, record])
    with pytest.raises(DataError) as err:
        data.read_experiments(path)
    assert f"{path}:4:" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"format": "other"}, ":1: the first line must be the header"),
        ({**data.header(), "version": 2}, ":1: unsupported version 2"),
        ({**data.header(), "frame": "lab"}, "frame must be 'canonical'"),
        ({**data.header(), "context_fields": ["x", "y"]}, "context_fields must be"),
        ({**data.header(), "context_fields": 5}, "context_fields must be"),
        ({**data.header(), "context_fields": None}, "context_fields must be"),
        ({**data.header(), "context_fields": "x_Ay_A"}, "context_fields must be"),
        ({**data.header(), "bond_length_A": "1.42"}, "bond_length_A must be a positive number"),
        ({**data.header(), "bond_length_A": -1}, "bond_length_A must be a positive number"),
    ],
)
def test_bad_header(tmp_path, header, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        data.read_experiments(_write(tmp_path, [GOOD], header))


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty file"):
        data.read_experiments(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="no records after the header"):
        data.read_experiments(_write(tmp_path, []))
    with pytest.raises(DataError, match="cannot read experiments file .*missing.jsonl"):
        data.read_experiments(tmp_path / "missing.jsonl")
    # blank lines are allowed; a hand-written file with ints reads fine
    path = _write(tmp_path, [GOOD, "", {"context": [1, 0, 60, 50], "dwell_s": 2,
                                         "moved": False, "neighbour": None}])
    obs = data.read_experiments(path)
    np.testing.assert_array_equal(obs.neighbour, [2, -1])


def test_invalid_utf8_names_the_line(tmp_path):
    path = _write(tmp_path, [GOOD, GOOD])
    raw = path.read_bytes().splitlines(keepends=True)
    raw[2] = raw[2].replace(b"dwell_s", b"dw\xffell_s")
    path.write_bytes(b"".join(raw))
    with pytest.raises(DataError, match=f"{path}:3: not valid UTF-8 \\(byte 0xff\\)"):
        data.read_experiments(path)
