"""WOMD TFRecord reader: framing, protobuf wire format, schema mapping and error messages."""

import struct

import numpy as np
import pytest

from selftaught.core.errors import DataError
from selftaught.sim.driving import dataloader as dl
from selftaught.sim.driving import generator as gen

CFG = gen.GeneratorConfig(num_objects=6, num_points=300, num_paths=2, path_points=40,
                          num_lights=3)
WCFG = dl.WomdConfig(num_objects=6, num_points=300, num_lights=3, num_paths=2, path_points=40)


def test_crc32c_known_vectors():
    # RFC 3720 test vectors for CRC-32C
    assert dl.crc32c(b"123456789") == 0xE3069283
    assert dl.crc32c(bytes(32)) == 0x8A9136AA
    assert dl.crc32c(bytes([0xFF] * 32)) == 0x62A8AB43


def test_protobuf_packed_and_unpacked_round_trip():
    feats = {"f": np.array([1.5, -2.25, 3e6], np.float32), "i": np.array([0, -7, 2**40, 5]),
             "b": [b"abc", b""]}
    for packed in (True, False):
        back = dl.parse_example(dl.encode_example(feats, packed=packed))
        np.testing.assert_array_equal(back["f"], feats["f"])
        np.testing.assert_array_equal(back["i"], feats["i"])
        assert back["b"] == [b"abc", b""]


def test_womd_round_trip(tmp_path):
    states = [gen.generate(s, CFG) for s in (0, 1)]
    path = tmp_path / "womd.tfrecord"
    dl.write_womd(path, states)
    back = list(dl.read_womd(path, WCFG))
    assert len(back) == 2
    for a, b in zip(states, back):
        for field in ("x", "y", "yaw", "vel_x", "valid", "timestamp_micros", "length"):
            np.testing.assert_array_equal(getattr(a.log_trajectory, field),
                                          getattr(b.log_trajectory, field))
        np.testing.assert_array_equal(a.roadgraph_points.types, b.roadgraph_points.types)
        np.testing.assert_array_equal(a.roadgraph_points.dir_x, b.roadgraph_points.dir_x)
        np.testing.assert_array_equal(a.log_traffic_light.state, b.log_traffic_light.state)
        np.testing.assert_array_equal(a.sdc_paths.arc_length, b.sdc_paths.arc_length)
        np.testing.assert_array_equal(a.sdc_paths.on_route, b.sdc_paths.on_route)
        np.testing.assert_array_equal(a.object_metadata.is_sdc, b.object_metadata.is_sdc)


def test_corrupt_records_name_file_and_record(tmp_path):
    path = tmp_path / "c.tfrecord"
    dl.write_womd(path, [gen.generate(s, CFG) for s in (0, 1)])
    raw = bytearray(path.read_bytes())
    (n0,) = struct.unpack("<Q", raw[:8])
    second = 8 + 4 + n0 + 4
    bad = bytearray(raw)
    bad[second + 12 + 50] ^= 0xFF  # flip a byte inside record 1's data
    p2 = tmp_path / "bad.tfrecord"
    p2.write_bytes(bytes(bad))
    with pytest.raises(DataError, match=r"bad.tfrecord: record 1: data CRC mismatch"):
        list(dl.read_womd(p2, WCFG))
    p3 = tmp_path / "trunc.tfrecord"
    p3.write_bytes(bytes(raw[: second + 100]))
    with pytest.raises(DataError, match=r"trunc.tfrecord: record 1: truncated"):
        list(dl.read_womd(p3, WCFG))
    # a valid frame around bytes that are not a protobuf
    p4 = tmp_path / "garbage.tfrecord"
    dl.write_tfrecord(p4, [b"\x0a\xff\xff\xff\xff\x0f"])
    with pytest.raises(DataError, match=r"record 0: malformed tf.Example"):
        list(dl.read_womd(p4, WCFG))
    with pytest.raises(DataError, match="cannot open"):
        list(dl.read_womd(tmp_path / "missing.tfrecord", WCFG))


def test_missing_key_and_wrong_shape(tmp_path):
    feats = dl.state_to_example(gen.generate(0, CFG))
    del feats["state/future/velocity_x"]
    p = tmp_path / "m.tfrecord"
    dl.write_tfrecord(p, [dl.encode_example(feats)])
    msg = r"m.tfrecord: record 0: missing key 'state/future/velocity_x'"
    with pytest.raises(DataError, match=msg):
        list(dl.read_womd(p, WCFG))
    feats = dl.state_to_example(gen.generate(0, CFG))
    feats["roadgraph_samples/xyz"] = feats["roadgraph_samples/xyz"][:-1]
    p = tmp_path / "s.tfrecord"
    dl.write_tfrecord(p, [dl.encode_example(feats), dl.encode_example(feats)])
    with pytest.raises(DataError, match=r"record 0: key 'roadgraph_samples/xyz' has 897 values, "
                                        r"expected 900"):
        list(dl.read_womd(p, WCFG))
