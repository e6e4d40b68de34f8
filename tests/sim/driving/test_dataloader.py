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
        for field in ("x", "y", "vel_x", "valid", "timestamp_micros"):
            np.testing.assert_array_equal(getattr(a.log_trajectory, field),
                                          getattr(b.log_trajectory, field))
        ok = np.asarray(a.log_trajectory.valid)
        wrapped = (np.asarray(a.log_trajectory.yaw) + np.pi) % (2 * np.pi) - np.pi
        np.testing.assert_allclose(b.log_trajectory.yaw, wrapped, atol=1e-6)
        np.testing.assert_allclose(np.where(ok, b.log_trajectory.length, 0),
                                   np.where(ok, a.log_trajectory.length, 0), rtol=1e-6)
        np.testing.assert_array_equal(b.object_metadata.is_valid, a.object_metadata.is_valid)
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


# Waymax's WOMD feature description (waymax/dataloader/womd_utils.py,
# get_features_description): key -> (kind, shape) for O objects, P points, L lights.
def _waymax_spec(O, P, L):  # noqa: E741
    spec = {
        "roadgraph_samples/dir": ("f", (P, 3)), "roadgraph_samples/id": ("i", (P, 1)),
        "roadgraph_samples/type": ("i", (P, 1)), "roadgraph_samples/valid": ("i", (P, 1)),
        "roadgraph_samples/xyz": ("f", (P, 3)), "state/id": ("f", (O,)),
        "state/type": ("f", (O,)), "state/is_sdc": ("i", (O,)),
        "state/tracks_to_predict": ("i", (O,)), "state/objects_of_interest": ("i", (O,)),
    }  # fmt: skip
    for when, n in (("past", 10), ("current", 1), ("future", 80)):
        for k in ("bbox_yaw", "height", "length", "vel_yaw", "speed", "velocity_x",
                  "velocity_y", "width", "x", "y", "z"):  # fmt: skip
            spec[f"state/{when}/{k}"] = ("f", (O, n))
        for k in ("timestamp_micros", "valid"):
            spec[f"state/{when}/{k}"] = ("i", (O, n))
        for k in ("state", "valid", "id"):
            spec[f"traffic_light_state/{when}/{k}"] = ("i", (n, L))
        for k in ("x", "y", "z"):
            spec[f"traffic_light_state/{when}/{k}"] = ("f", (n, L))
        spec[f"traffic_light_state/{when}/timestamp_micros"] = ("i", (n,))
    return spec


def test_writer_emits_every_key_of_waymax_feature_spec(tmp_path):
    st = gen.generate(0, CFG)
    md = st.object_metadata
    st = st.replace(object_metadata=md.replace(is_valid=np.arange(6) < 5))  # slot 5 is padding
    p = tmp_path / "w.tfrecord"
    dl.write_womd(p, [st])
    feats = dl.parse_example(next(dl.read_tfrecord(p)))
    spec = _waymax_spec(6, 300, 3)
    assert len(spec) == 10 + 3 * (13 + 7)
    missing = sorted(set(spec) - set(feats))
    assert not missing, missing
    for key, (kind, shape) in spec.items():
        assert feats[key].dtype.kind == kind, key
        assert feats[key].size == int(np.prod(shape)), key
    log = st.log_trajectory
    np.testing.assert_allclose(feats["state/future/speed"].reshape(6, 80),
                               np.hypot(log.vel_x, log.vel_y)[:, 11:], rtol=1e-6)
    np.testing.assert_allclose(feats["state/current/vel_yaw"].reshape(6),
                               np.arctan2(log.vel_y, log.vel_x)[:, 10], atol=1e-6)
    np.testing.assert_array_equal(feats["traffic_light_state/past/timestamp_micros"],
                                  log.timestamp_micros[0, :10])
    absent = ~np.asarray(st.object_metadata.is_valid)
    assert absent.any()
    assert np.all(feats["state/tracks_to_predict"][absent] == -1)
    assert np.all(feats["state/id"][absent] == -1.0)


def _record_with(tmp_path, name, **changes):
    st = gen.generate(0, CFG)
    feats = dl.state_to_example(st)
    for k, fn in changes.items():
        feats[k.replace("__", "/")] = fn(feats[k.replace("__", "/")])
    p = tmp_path / name
    dl.write_tfrecord(p, [dl.encode_example(feats)])
    return st, p


def test_reader_follows_waymax_yaw_sizes_and_validity(tmp_path):
    st = gen.generate(0, CFG)
    p = tmp_path / "y.tfrecord"
    feats = dl.state_to_example(st)
    O = 6  # noqa: E741
    feats["state/current/bbox_yaw"] = feats["state/current/bbox_yaw"] + 4 * np.pi
    rng = np.random.default_rng(0)
    for when in ("past", "current", "future"):
        feats[f"state/{when}/length"] = rng.uniform(3, 6, feats[f"state/{when}/length"].shape
                                                    ).astype(np.float32)  # fmt: skip
    valid = np.concatenate([feats[f"state/{w}/valid"] for w in ("past", "current", "future")], 1)
    valid[1] = 0
    valid[1, [5, 40, 90]] = 1
    feats["state/past/valid"], feats["state/current/valid"], feats["state/future/valid"] = (
        valid[:, :10], valid[:, 10:11], valid[:, 11:])
    # tracks_to_predict: 0 (a real, unmodeled object) stays valid even if never valid in time
    feats["state/tracks_to_predict"] = np.array([1, 0, 0, -1, 1, -1], np.int64)
    dl.write_tfrecord(p, [dl.encode_example(feats)])
    b = next(dl.read_womd(p, WCFG))
    yaw = b.log_trajectory.yaw
    assert float(np.abs(yaw).max()) <= np.pi
    np.testing.assert_allclose(yaw[:, 10], (feats["state/current/bbox_yaw"][:, 0] + np.pi)
                               % (2 * np.pi) - np.pi, atol=1e-5)  # fmt: skip
    lengths = np.concatenate([feats[f"state/{w}/length"] for w in ("past", "current",
                                                                   "future")], 1)  # fmt: skip
    np.testing.assert_allclose(b.log_trajectory.length[1], lengths[1, [5, 40, 90]].mean(),
                               rtol=1e-5)  # fmt: skip
    assert np.ptp(np.asarray(b.log_trajectory.length), axis=1).max() == 0.0  # one size
    np.testing.assert_array_equal(b.object_metadata.is_valid, [1, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(b.object_metadata.is_modeled, [1, 0, 0, 0, 1, 0])
    assert O == b.log_trajectory.num_objects


def test_loader_rejects_int_float_swaps_empty_files_and_corrupt_keys(tmp_path):
    _, p = _record_with(tmp_path, "i.tfrecord", state__past__valid=lambda a: a.astype(np.float32))
    with pytest.raises(DataError, match=r"i.tfrecord: record 0: key 'state/past/valid' is "
                                        r"stored as float_list.*int64_list"):
        list(dl.read_womd(p, WCFG))
    _, p = _record_with(tmp_path, "f.tfrecord", state__future__x=lambda a: a.astype(np.int64))
    with pytest.raises(DataError, match=r"f.tfrecord: record 0: key 'state/future/x' is "
                                        r"stored as int64_list"):
        list(dl.read_womd(p, WCFG))
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.tfrecord: the file holds no records"):
        list(dl.read_womd(empty, WCFG))
    # corrupted key bytes (issue 17, item 5): invalid UTF-8 inside a feature key
    raw = dl.encode_example(dl.state_to_example(gen.generate(0, CFG)))
    assert raw.count(b"\x0cstate/past/x") == 1  # the key with its length prefix
    bad = raw.replace(b"\x0cstate/past/x", b"\x0cstate/p\xffst/x")
    p = tmp_path / "k.tfrecord"
    dl.write_tfrecord(p, [raw, bad])
    with pytest.raises(DataError, match=r"k.tfrecord: record 1: .*feature key "
                                        r"b'state/p\\xffst/x' is not valid UTF-8"):
        list(dl.read_womd(p, WCFG))
