"""Waymo Open Motion Dataset (tf.Example) TFRecord files without TensorFlow.

Three layers, each small enough to read:
1. TFRecord framing: uint64 length, masked crc32c(length), data, masked crc32c(data).
2. tf.train.Example protobuf wire format: Example{features: Features{map<string, Feature>}},
   Feature = oneof {bytes_list, float_list, int64_list} with packed or unpacked values.
3. The WOMD key schema (`state/past/x`, `roadgraph_samples/xyz`, ...) -> SimulatorState.

Every problem a file can have (bad CRC, truncated record, malformed protobuf, missing key,
wrong number of values) raises `DataError` naming the file, the record index and the key.
Writers for all three layers exist so tests can build small files.
"""

from __future__ import annotations

import dataclasses
import struct as _struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from selftaught.core.errors import DataError
from selftaught.sim.driving.datatypes import (
    NUM_FUTURE,
    NUM_PAST,
    ObjectMetadata,
    Paths,
    RoadgraphPoints,
    SimulatorState,
    TrafficLights,
    Trajectory,
)

# --------------------------------------------------------------------------- crc32c
_POLY = 0x82F63B78
_TABLE = np.zeros(256, np.uint32)
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE[_i] = _c
_TABLE_LIST = [int(v) for v in _TABLE]


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _TABLE_LIST
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- TFRecord
def write_tfrecord(path, records: list[bytes]) -> None:
    with open(path, "wb") as fh:
        for rec in records:
            header = _struct.pack("<Q", len(rec))
            fh.write(header)
            fh.write(_struct.pack("<I", masked_crc32c(header)))
            fh.write(rec)
            fh.write(_struct.pack("<I", masked_crc32c(rec)))


def read_tfrecord(path, verify: bool = True) -> Iterator[bytes]:
    """Yield the records of a TFRecord file, checking both CRCs."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot open TFRecord file {path}: {exc.strerror}") from None
    with fh:
        index = 0
        while True:
            header = fh.read(8)
            if not header:
                return
            if len(header) < 8:
                raise DataError(f"{path}: record {index}: truncated length header")
            crc_len = fh.read(4)
            if len(crc_len) < 4:
                raise DataError(f"{path}: record {index}: truncated length CRC")
            if verify and _struct.unpack("<I", crc_len)[0] != masked_crc32c(header):
                raise DataError(f"{path}: record {index}: length CRC mismatch (corrupt file)")
            (n,) = _struct.unpack("<Q", header)
            data = fh.read(n)
            crc_data = fh.read(4)
            if len(data) < n or len(crc_data) < 4:
                raise DataError(
                    f"{path}: record {index}: truncated data ({len(data)} of {n} bytes)"
                )
            if verify and _struct.unpack("<I", crc_data)[0] != masked_crc32c(data):
                raise DataError(f"{path}: record {index}: data CRC mismatch (corrupt record)")
            yield data
            index += 1


# --------------------------------------------------------------------------- protobuf
class _ProtoError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ProtoError("varint too long")


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) where value is int or bytes."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            if pos + 8 > n:
                raise _ProtoError("truncated fixed64")
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > n:
                raise _ProtoError("truncated length-delimited field")
            val, pos = buf[pos : pos + ln], pos + ln
        elif wt == 5:
            if pos + 4 > n:
                raise _ProtoError("truncated fixed32")
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wt}")
        yield field, wt, val


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_feature(buf: bytes):
    for field, wt, val in _fields(buf):
        if field == 1 and wt == 2:  # BytesList
            return [bytes(v) for f, w, v in _fields(val) if f == 1 and w == 2]
        if field == 2 and wt == 2:  # FloatList
            chunks = []
            for f, w, v in _fields(val):
                if f != 1:
                    continue
                if w == 2:
                    if len(v) % 4:
                        raise _ProtoError("packed float list length not a multiple of 4")
                    chunks.append(np.frombuffer(v, "<f4"))
                elif w == 5:
                    chunks.append(np.frombuffer(v, "<f4"))
            return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if field == 3 and wt == 2:  # Int64List
            vals = []
            for f, w, v in _fields(val):
                if f != 1:
                    continue
                if w == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        vals.append(_signed64(x))
                elif w == 0:
                    vals.append(_signed64(v))
            return np.asarray(vals, np.int64)
    return np.zeros(0, np.float32)  # an empty Feature


def parse_example(buf: bytes) -> dict:
    """tf.train.Example bytes -> {key: np.ndarray (float32/int64) or list[bytes]}."""
    out = {}
    for field, wt, val in _fields(buf):
        if field != 1 or wt != 2:
            continue
        for f2, w2, entry in _fields(val):  # Features.feature map entries
            if f2 != 1 or w2 != 2:
                continue
            key, feat = None, b""
            for f3, w3, v3 in _fields(entry):
                if f3 == 1 and w3 == 2:
                    try:
                        key = bytes(v3).decode("utf-8")
                    except UnicodeDecodeError:
                        raise _ProtoError(
                            f"feature key {bytes(v3)[:60]!r} is not valid UTF-8 (corrupt key)"
                        ) from None
                elif f3 == 2 and w3 == 2:
                    feat = v3
            if key is None:
                raise _ProtoError("feature map entry without a key")
            out[key] = _decode_feature(feat)
    return out


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def encode_example(features: dict, packed: bool = True) -> bytes:
    """{key: array (float -> float_list, int/bool -> int64_list) or list[bytes]} -> bytes."""
    entries = b""
    for key, value in features.items():
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], bytes):
            feat = _ld(1, b"".join(_ld(1, v) for v in value))
        else:
            arr = np.asarray(value).reshape(-1)
            if arr.dtype.kind == "f":
                if packed:
                    body = _ld(1, arr.astype("<f4").tobytes())
                else:
                    body = b"".join(_enc_varint(1 << 3 | 5) + _struct.pack("<f", float(x))
                                    for x in arr)  # fmt: skip
                feat = _ld(2, body)
            else:
                ints = [int(x) for x in arr.astype(np.int64)]
                if packed:
                    body = _ld(1, b"".join(_enc_varint(x) for x in ints))
                else:
                    body = b"".join(_enc_varint(1 << 3 | 0) + _enc_varint(x) for x in ints)
                feat = _ld(3, body)
        entry = _ld(1, key.encode("utf-8")) + _ld(2, feat)
        entries += _ld(1, entry)
    return _ld(1, entries)


# --------------------------------------------------------------------------- WOMD schema
@dataclasses.dataclass(frozen=True)
class WomdConfig:
    num_objects: int = 128
    num_points: int = 20000
    num_lights: int = 16
    num_paths: int = 0  # 0: files without SDC paths (the public WOMD); >0: path_samples/*
    path_points: int = 0


_STEPS = (("past", NUM_PAST), ("current", 1), ("future", NUM_FUTURE))
_TRAJ_KEYS = {
    "x": "x", "y": "y", "z": "z", "vel_x": "velocity_x", "vel_y": "velocity_y",
    "yaw": "bbox_yaw", "valid": "valid", "timestamp_micros": "timestamp_micros",
    "length": "length", "width": "width", "height": "height",
}  # fmt: skip
_LIGHT_KEYS = {"x": "x", "y": "y", "z": "z", "state": "state", "lane_ids": "id", "valid": "valid"}


class _Record:
    def __init__(self, feats: dict, path, index: int):
        self.f, self.path, self.index = feats, path, index

    def get(self, key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """The values of `key` as `shape`. `dtype` is the schema's type (float32 for a
        float_list, int64 for an int64_list); a feature stored as the other kind is an
        error, never a silent int<->float cast."""
        if key not in self.f:
            raise DataError(f"{self.path}: record {self.index}: missing key {key!r}")
        arr = self.f[key]
        if isinstance(arr, list):
            raise DataError(f"{self.path}: record {self.index}: key {key!r} holds bytes, "
                            "expected numbers")  # fmt: skip
        n = int(np.prod(shape))
        if arr.size != n:
            raise DataError(
                f"{self.path}: record {self.index}: key {key!r} has {arr.size} values, "
                f"expected {n} (shape {shape}); check WomdConfig sizes"
            )
        want = np.dtype(dtype).kind
        if n and arr.dtype.kind != want:
            names = {"f": "float_list", "i": "int64_list"}
            raise DataError(
                f"{self.path}: record {self.index}: key {key!r} is stored as "
                f"{names[arr.dtype.kind]}, the WOMD schema has {names[want]} "
                "(values are not converted between int and float)"
            )
        return arr.reshape(shape)


def _masked_mean(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of a [O, T] over valid steps, broadcast back to [O, T]; -1 with no valid step
    (Waymax's box sizes: constant per object)."""
    n = valid.sum(-1)
    mean = np.where(valid, a, 0.0).sum(-1) / np.maximum(n, 1)
    return np.broadcast_to(np.where(n > 0, mean, -1.0)[:, None], a.shape).astype(np.float32)


def _example_to_state(rec: _Record, cfg: WomdConfig) -> SimulatorState:
    """Waymax's reading of a WOMD example: yaw wrapped to [-pi, pi), length/width/height
    averaged over each object's valid steps, object validity from `tracks_to_predict != -1`
    (WOMD pads absent objects with -1), modeled = tracks_to_predict == 1."""
    O, P, L = cfg.num_objects, cfg.num_points, cfg.num_lights  # noqa: E741
    traj = {}
    for field, key in _TRAJ_KEYS.items():
        kind = np.int64 if field in ("valid", "timestamp_micros") else np.float32
        parts = [rec.get(f"state/{p}/{key}", (O, n), kind) for p, n in _STEPS]
        traj[field] = np.concatenate(parts, axis=1)
    valid = traj["valid"] > 0
    traj["valid"] = valid
    traj["timestamp_micros"] = traj["timestamp_micros"].astype(np.int32)
    traj["yaw"] = ((traj["yaw"] + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)
    for field in ("length", "width", "height"):
        traj[field] = _masked_mean(traj[field], valid)
    log = Trajectory(**traj)
    ttp = rec.get("state/tracks_to_predict", (O,), np.int64)
    is_sdc = rec.get("state/is_sdc", (O,), np.int64) == 1
    meta = ObjectMetadata(
        ids=rec.get("state/id", (O,), np.float32).astype(np.int32),
        object_types=rec.get("state/type", (O,), np.float32).astype(np.int32),
        is_sdc=is_sdc,
        is_modeled=ttp == 1,
        is_valid=ttp != -1,
        objects_of_interest=rec.get("state/objects_of_interest", (O,), np.int64) == 1,
        is_controlled=is_sdc,
    )
    xyz = rec.get("roadgraph_samples/xyz", (P, 3), np.float32)
    d = rec.get("roadgraph_samples/dir", (P, 3), np.float32)
    rg = RoadgraphPoints(
        x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], dir_x=d[:, 0], dir_y=d[:, 1], dir_z=d[:, 2],
        types=rec.get("roadgraph_samples/type", (P, 1), np.int64)[:, 0].astype(np.int32),
        ids=rec.get("roadgraph_samples/id", (P, 1), np.int64)[:, 0].astype(np.int32),
        valid=rec.get("roadgraph_samples/valid", (P, 1), np.int64)[:, 0] > 0,
    )  # fmt: skip
    lights = {}
    for field, key in _LIGHT_KEYS.items():
        ft = np.float32 if field in ("x", "y", "z") else np.int64
        parts = [rec.get(f"traffic_light_state/{p}/{key}", (n, L), ft) for p, n in _STEPS]
        arr = np.concatenate(parts, axis=0).T  # [T, L] -> [L, T]
        lights[field] = arr > 0 if field == "valid" else arr.astype(
            np.float32 if ft is np.float32 else np.int32
        )
    tl = TrafficLights(**lights)
    N, M = cfg.num_paths, cfg.path_points
    if N > 0:
        pxyz = rec.get("path_samples/xyz", (N, M, 3), np.float32)
        paths = Paths(
            x=pxyz[..., 0], y=pxyz[..., 1], z=pxyz[..., 2],
            ids=rec.get("path_samples/id", (N, M), np.int64).astype(np.int32),
            valid=rec.get("path_samples/valid", (N, M), np.int64) > 0,
            arc_length=rec.get("path_samples/arc_length", (N, M), np.float32),
            on_route=rec.get("path_samples/on_route", (N, 1), np.int64)[:, 0] > 0,
        )  # fmt: skip
    else:
        z = np.zeros((1, 1), np.float32)
        paths = Paths(x=z, y=z, z=z, ids=z.astype(np.int32), valid=z > 1, arc_length=z,
                      on_route=np.zeros(1, bool))  # fmt: skip
    try:
        return SimulatorState(
            sim_trajectory=log, log_trajectory=log, log_traffic_light=tl, object_metadata=meta,
            timestep=np.int32(0), roadgraph_points=rg, sdc_paths=paths,
        )  # fmt: skip
    except ValueError as exc:
        raise DataError(f"{rec.path}: record {rec.index}: inconsistent shapes: {exc}") from None


def read_womd(path, config: WomdConfig = WomdConfig()) -> Iterator[SimulatorState]:
    """Yield one SimulatorState per tf.Example record of a WOMD TFRecord file; a file
    without records is an error (DataError), not zero scenarios."""
    count = 0
    for i, raw in enumerate(read_tfrecord(path)):
        try:
            feats = parse_example(raw)
        except _ProtoError as exc:
            raise DataError(f"{path}: record {i}: malformed tf.Example protobuf: {exc}") from None
        yield _example_to_state(_Record(feats, path, i), config)
        count += 1
    if count == 0:
        raise DataError(f"{path}: the file holds no records (empty TFRecord file); "
                        "pass a WOMD tf.Example TFRecord file")  # fmt: skip


def state_to_example(state: SimulatorState) -> dict:
    """The WOMD feature dict of an unbatched SimulatorState (inverse of the reader).

    It holds every key of Waymax's WOMD feature description (`state/*/speed`, `vel_yaw`,
    traffic-light `timestamp_micros` included, with the schema's int64/float kinds), so
    Waymax's parser reads the file; `path_samples/*` are extra keys that parser reads with
    `include_sdc_paths`. Absent objects carry -1 in `state/id`, `type`, `is_sdc`,
    `tracks_to_predict` and `objects_of_interest`, as in WOMD."""
    s = state
    log = s.log_trajectory
    feats = {}
    bounds = {"past": (0, NUM_PAST), "current": (NUM_PAST, NUM_PAST + 1),
              "future": (NUM_PAST + 1, NUM_PAST + 1 + NUM_FUTURE)}  # fmt: skip
    vx, vy = np.asarray(log.vel_x, np.float32), np.asarray(log.vel_y, np.float32)
    derived = {"speed": np.hypot(vx, vy), "vel_yaw": np.arctan2(vy, vx)}
    for p, (lo, hi) in bounds.items():
        for field, key in _TRAJ_KEYS.items():
            part = np.asarray(getattr(log, field))[:, lo:hi]
            feats[f"state/{p}/{key}"] = part.astype(np.float32 if part.dtype.kind == "f"
                                                    else np.int64)  # fmt: skip
        for key, a in derived.items():
            feats[f"state/{p}/{key}"] = a[:, lo:hi].astype(np.float32)
    md = s.object_metadata
    ok = np.asarray(md.is_valid)
    absent = lambda a, dt: np.where(ok, np.asarray(a).astype(dt), -1).astype(dt)  # noqa: E731
    feats["state/id"] = absent(md.ids, np.float32)
    feats["state/type"] = absent(md.object_types, np.float32)
    feats["state/is_sdc"] = absent(md.is_sdc, np.int64)
    feats["state/tracks_to_predict"] = absent(md.is_modeled, np.int64)
    feats["state/objects_of_interest"] = absent(md.objects_of_interest, np.int64)
    rg = s.roadgraph_points
    feats["roadgraph_samples/xyz"] = np.stack([rg.x, rg.y, rg.z], -1).astype(np.float32)
    feats["roadgraph_samples/dir"] = np.stack([rg.dir_x, rg.dir_y, rg.dir_z], -1).astype(
        np.float32
    )
    feats["roadgraph_samples/type"] = np.asarray(rg.types, np.int64)[:, None]
    feats["roadgraph_samples/id"] = np.asarray(rg.ids, np.int64)[:, None]
    feats["roadgraph_samples/valid"] = np.asarray(rg.valid, np.int64)[:, None]
    tl = s.log_traffic_light
    # one timestamp per step: the SDC's (WOMD's scenario clock)
    sdc = int(np.argmax(np.asarray(md.is_sdc)))
    clock = np.asarray(log.timestamp_micros)[sdc].astype(np.int64)
    for p, (lo, hi) in bounds.items():
        for field, key in _LIGHT_KEYS.items():
            part = np.asarray(getattr(tl, field)).T[lo:hi]  # [T, L]
            feats[f"traffic_light_state/{p}/{key}"] = part.astype(
                np.float32 if part.dtype.kind == "f" else np.int64
            )
        feats[f"traffic_light_state/{p}/timestamp_micros"] = clock[lo:hi]
    pa = s.sdc_paths
    feats["path_samples/xyz"] = np.stack([pa.x, pa.y, pa.z], -1).astype(np.float32)
    feats["path_samples/id"] = np.asarray(pa.ids, np.int64)
    feats["path_samples/valid"] = np.asarray(pa.valid, np.int64)
    feats["path_samples/arc_length"] = np.asarray(pa.arc_length, np.float32)
    feats["path_samples/on_route"] = np.asarray(pa.on_route, np.int64)[:, None]
    return feats


def write_womd(path, states: list[SimulatorState], packed: bool = True) -> None:
    """Write unbatched SimulatorStates as a WOMD-schema TFRecord file."""
    write_tfrecord(path, [encode_example(state_to_example(s), packed) for s in states])
