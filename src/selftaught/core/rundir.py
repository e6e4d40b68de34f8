"""The run directory: the unit of truth for a run.

    RUN_DIR/
      config.json     {"recipe", "preset", "seeds", "config": {...}}
      metrics.jsonl   one JSON object per event, appended atomically (one write + fsync)
      checkpoints/    NAME.msgpack, written to a temp file and renamed
      plots/*.png     rebuilt by the recipe's report from metrics.jsonl
      report.md       claims table + the recipe's own sections
      summary.json    {"recipe", "preset", "seeds", "claims": [...], "wall_seconds"}

Resumption works by *phases*: a recipe splits its work into named phases
("seed0/sft", "seed0/iter2", ...). An event logged with `phase=NAME` counts only once
that phase is marked done; reopening with resume drops events of unfinished phases, so a
killed-and-resumed run ends with exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from selftaught.core.errors import DataError, RunDirError

PHASE_DONE = "phase_done"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def to_jsonable(value: Any) -> Any:
    """Numbers from NumPy/JAX become Python scalars or lists; NaN stays NaN."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class RunDir:
    """A run directory opened for writing (or for reading with `RunDir.open`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"
        self.metrics_path = self.path / "metrics.jsonl"
        self._done: set[str] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls, path: Path, *, recipe: str, preset: str, seeds: int, config: dict, resume: bool
    ) -> RunDir:
        """Open `path` for a run. Without resume it must be new or empty; with resume it
        must hold a run of the same recipe (its stored config wins)."""
        path = Path(path)
        run = cls(path)
        cfg_path = path / "config.json"
        if resume:
            if not cfg_path.exists():
                raise RunDirError(f"cannot resume {path}: it has no config.json; start a new run")
            stored = run.read_config()
            if stored["recipe"] != recipe:
                raise RunDirError(
                    f"{path} holds a run of recipe {stored['recipe']!r}, not {recipe!r}; "
                    f"resume it with `selftaught run {stored['recipe']} --resume {path}`"
                )
            run._drop_unfinished_events()
            return run
        if path.exists() and any(path.iterdir()):
            raise RunDirError(
                f"run directory {path} is not empty; pass --resume to continue it, "
                "or choose another --run-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
        meta = {"recipe": recipe, "preset": preset, "seeds": seeds, "config": config}
        atomic_write_text(cfg_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """Open an existing run directory for reading/reporting."""
        path = Path(path)
        if not (path / "config.json").exists():
            raise RunDirError(f"{path} is not a run directory (no config.json)")
        return cls(path)

    def read_config(self) -> dict:
        try:
            return json.loads((self.path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"cannot read {self.path / 'config.json'}: {exc}") from None

    # ------------------------------------------------------------------ metrics
    def log(self, event: str, phase: str | None = None, **fields: Any) -> None:
        """Append one event. With `phase`, the event counts once that phase is done."""
        record = {"event": event, **({"phase": phase} if phase is not None else {})}
        record.update(to_jsonable(fields))
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _raw_events(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        events = []
        with open(self.metrics_path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    events.append(json.loads(raw))
                except json.JSONDecodeError:
                    if not raw.endswith(b"\n"):  # a write cut by a kill: drop it
                        continue
                    raise DataError(f"{self.metrics_path}: line {i} is not valid JSON") from None
        return events

    def events(self, event: str | None = None, **match: Any) -> list[dict]:
        """Counted events (finished phases or phase-less), optionally filtered."""
        done = self.done_phases()
        out = []
        for rec in self._raw_events():
            ph = rec.get("phase")
            if ph is not None and ph not in done and rec["event"] != PHASE_DONE:
                continue
            if event is not None and rec["event"] != event:
                continue
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def _drop_unfinished_events(self) -> None:
        done = self.done_phases()
        keep = [
            r for r in self._raw_events() if r.get("phase") is None or r.get("phase") in done
        ]
        text = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in keep)
        if self.metrics_path.exists():
            atomic_write_text(self.metrics_path, text)

    # ------------------------------------------------------------------ phases
    def done_phases(self) -> set[str]:
        return {r["phase"] for r in self._raw_events() if r["event"] == PHASE_DONE}

    def phase_done(self, phase: str) -> bool:
        return phase in self.done_phases()

    def mark_phase_done(self, phase: str, wall_seconds: float, **fields: Any) -> None:
        self.log(PHASE_DONE, phase=phase, wall_seconds=float(wall_seconds), **fields)

    def wall_seconds(self) -> float:
        """Compute time of all finished phases (a resumed run adds its sessions)."""
        return float(sum(r.get("wall_seconds", 0.0) for r in self.events(PHASE_DONE)))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, name: str) -> Path:
        return self.checkpoints / f"{name.replace('/', '__')}.msgpack"

    def has_checkpoint(self, name: str) -> bool:
        return self.checkpoint_path(name).exists()

    def save_checkpoint(self, name: str, tree: Any) -> Path:
        """Save a pytree (dicts/lists of arrays and scalars, flax params) atomically."""
        from flax import serialization

        state = serialization.to_state_dict(tree)
        state = _to_numpy(state)
        path = self.checkpoint_path(name)
        atomic_write_bytes(path, serialization.msgpack_serialize(state))
        return path

    def load_checkpoint(self, name: str, target: Any = None) -> Any:
        """Load a checkpoint; with `target`, restore into its structure."""
        from flax import serialization

        path = self.checkpoint_path(name)
        if not path.exists():
            raise RunDirError(f"checkpoint {name!r} missing in {self.path}; rerun without --resume")
        state = serialization.msgpack_restore(path.read_bytes())
        if target is None:
            return state
        return serialization.from_state_dict(target, state)

    # ------------------------------------------------------------------ outputs
    def write_text(self, relpath: str, text: str) -> Path:
        out = self.path / relpath
        atomic_write_text(out, text)
        return out

    def write_json(self, relpath: str, obj: Any) -> Path:
        return self.write_text(
            relpath, json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=True) + "\n"
        )


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return np.asarray(tree)
    return tree


class Timer:
    """Wall-clock seconds since construction (for phase timing)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
