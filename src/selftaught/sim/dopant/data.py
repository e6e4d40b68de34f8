"""Recorded experiments as JSON Lines (`*.jsonl`), one exposure per line.

Line 1 is a header; every following non-blank line is one record:

    {"format": "selftaught-dopant-experiments", "version": 1,
     "context_fields": ["x_A", "y_A", "voltage_kV", "current_pA"], "frame": "canonical",
     "bond_length_A": 1.42}
    {"context": [0.91, -0.12, 60.0, 50.0], "dwell_s": 0.5, "moved": true, "neighbour": 2}
    {"context": [-1.30, 0.44, 60.0, 50.0], "dwell_s": 1.2, "moved": false, "neighbour": null}

- `context`: the beam position relative to the Si in its canonical frame (Å; neighbour 0
  on +x, neighbour k at 120°·k), the voltage (kV, > 0) and the current (pA, ≥ 0), in the
  order of the header's `context_fields`.
- `dwell_s`: exposure time in seconds (finite, > 0).
- `moved`: whether the Si had jumped when imaged after the exposure.
- `neighbour`: the canonical neighbour (0, 1 or 2) it jumped to; null when it did not move.

Exactly these keys are allowed. A malformed or inconsistent record raises DataError naming
the file and the line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from selftaught.core.errors import DataError
from selftaught.core.rundir import atomic_write_text
from selftaught.sim.dopant.lattice import BOND
from selftaught.sim.dopant.rates import CONTEXT_FIELDS
from selftaught.sim.dopant.sim import Observation

FORMAT = "selftaught-dopant-experiments"
VERSION = 1
RECORD_KEYS = ("context", "dwell_s", "moved", "neighbour")


def header() -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "context_fields": list(CONTEXT_FIELDS),
        "frame": "canonical",
        "bond_length_A": BOND,
    }


def write_experiments(path: Path, obs: Observation) -> Path:
    """Write observations (leading axis = records) atomically as JSONL."""
    ctx = np.asarray(obs.context, dtype=np.float64).reshape(-1, len(CONTEXT_FIELDS))
    dwell = np.asarray(obs.dwell, dtype=np.float64).reshape(-1)
    moved = np.asarray(obs.moved).reshape(-1).astype(bool)
    nbr = np.asarray(obs.neighbour).reshape(-1).astype(int)
    lines = [json.dumps(header())]
    for c, d, m, k in zip(ctx, dwell, moved, nbr):
        rec = {
            "context": [round(float(v), 6) for v in c],
            "dwell_s": round(float(d), 6),
            "moved": bool(m),
            "neighbour": int(k) if m else None,
        }
        lines.append(json.dumps(rec))
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_header(path: Path, rec, lineno: int) -> None:
    where = f"{path}:{lineno}"
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise DataError(
            f"{where}: the first line must be the header "
            f'{{"format": "{FORMAT}", "version": {VERSION}, ...}}; got {str(rec)[:80]}'
        )
    if rec.get("version") != VERSION:
        raise DataError(f"{where}: unsupported version {rec.get('version')!r}; expected {VERSION}")
    fields = rec.get("context_fields")
    if not isinstance(fields, list) or tuple(fields) != CONTEXT_FIELDS:
        raise DataError(
            f"{where}: context_fields must be {list(CONTEXT_FIELDS)}, "
            f"got {rec.get('context_fields')!r}"
        )
    if rec.get("frame") != "canonical":
        raise DataError(
            f"{where}: frame must be 'canonical' (neighbour 0 on +x), got {rec.get('frame')!r}"
        )
    bond = rec.get("bond_length_A", BOND)
    if not _finite_number(bond) or bond <= 0:
        raise DataError(f"{where}: bond_length_A must be a positive number, got {bond!r}")


def _check_record(where: str, rec) -> tuple[list[float], float, bool, int]:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    missing = [k for k in RECORD_KEYS if k not in rec]
    extra = sorted(set(rec) - set(RECORD_KEYS))
    if missing or extra:
        raise DataError(
            f"{where}: record keys must be exactly {list(RECORD_KEYS)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
        )
    ctx = rec["context"]
    n = len(CONTEXT_FIELDS)
    if not isinstance(ctx, list) or len(ctx) != n or not all(map(_finite_number, ctx)):
        raise DataError(
            f"{where}: 'context' must be a list of {n} finite numbers "
            f"{list(CONTEXT_FIELDS)}, got {ctx!r}"
        )
    if ctx[2] <= 0 or ctx[3] < 0:
        raise DataError(
            f"{where}: voltage_kV must be > 0 and current_pA >= 0, got {ctx[2]!r}, {ctx[3]!r}"
        )
    dwell = rec["dwell_s"]
    if not _finite_number(dwell) or dwell <= 0:
        raise DataError(f"{where}: 'dwell_s' must be a finite number > 0, got {dwell!r}")
    moved, nbr = rec["moved"], rec["neighbour"]
    if not isinstance(moved, bool):
        raise DataError(f"{where}: 'moved' must be true or false, got {moved!r}")
    if moved:
        if not (isinstance(nbr, int) and not isinstance(nbr, bool) and 0 <= nbr <= 2):
            raise DataError(
                f"{where}: inconsistent record: moved is true so 'neighbour' must be 0, 1 or 2, "
                f"got {nbr!r}"
            )
    elif nbr is not None:
        raise DataError(
            f"{where}: inconsistent record: moved is false but 'neighbour' is {nbr!r}; "
            "use null"
        )
    return ctx, float(dwell), moved, (nbr if moved else -1)


def read_experiments(path: Path) -> Observation:
    """Read and validate a JSONL file written by `write_experiments` (or by hand)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read experiments file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}:{lineno}: not valid UTF-8 (byte {raw[exc.start]:#04x}); the file is "
            "damaged or not a JSONL experiments file"
        ) from None
    ctxs, dwells, moveds, nbrs = [], [], [], []
    seen_header = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not seen_header:
            _check_header(path, rec, lineno)
            seen_header = True
            continue
        c, d, m, k = _check_record(f"{path}:{lineno}", rec)
        ctxs.append(c)
        dwells.append(d)
        moveds.append(m)
        nbrs.append(k)
    if not seen_header:
        raise DataError(f"{path}: empty file; expected a header line and records")
    if not ctxs:
        raise DataError(f"{path}: no records after the header; record some experiments first")
    return Observation(
        context=np.asarray(ctxs, np.float32).reshape(-1, len(CONTEXT_FIELDS)),
        dwell=np.asarray(dwells, np.float32),
        moved=np.asarray(moveds, bool),
        neighbour=np.asarray(nbrs, np.int32),
    )
