"""The run directory: the unit of truth for a run.

    RUN_DIR/
      config.json     {"recipe", "preset", "seeds", "config": {...}}
      metrics.jsonl   one JSON object per event, appended atomically (one write + fsync)
      checkpoints/    NAME.msgpack, written to a temp file and renamed, beside
                      NAME.msgpack.sha256 (its checksum and the phase that wrote it)
      .lock           held (flock) by the process running the recipe; holds its PID
      run.log         one plain line per finished phase, appended by every session, and
                      inside a long phase its progress bars' counts (one line a minute)
      plots/*.png     rebuilt by the recipe's report from metrics.jsonl
      report.md       claims table + the recipe's own sections
      summary.json    {"recipe", "preset", "seeds", "claims": [...], "wall_seconds"}

Resumption works by *phases*: a recipe splits its work into named phases
("seed0/sft", "seed0/iter2", ...), each run by `RunDir.phase`:

    policy = run_dir.phase(f"seed{seed}/sft", train_sft, config, data, restore=base_params)

A finished phase is not run again: its checkpoint is loaded into `restore`'s structure and
returned. Otherwise the work runs, `train_sft(log, config, data)`, its first argument a
logger bound to the phase (`log(event, **fields)`; `log.headline(**fields)` adds key metrics
to the phase's done line); its result (a pytree, or None for a phase without a checkpoint)
is saved as the phase's checkpoint, and the phase is marked done: a `phase_done` event with
its wall time, one line in run.log (and on stdout when it is not a terminal) and a step of
the run's progress bar. Either way the result is returned. An event logged
with `phase=NAME` counts only once that phase is done; reopening with resume drops events
of unfinished phases, so a killed-and-resumed run ends with exactly the metrics of an
uninterrupted one.

The phase names of a complete run are the recipe's *plan* (`Recipe.phases`), declared once:
the runner hands it to the run directory (`RunDir.planned`), `RunDir.phase` refuses a name
outside it (a recipe bug, so an internal error), and a report of an unfinished run names
exactly the planned phases it lacks.

Integrity: every checkpoint and every data file the run seals (`RunDir.seal`) has a
SHA-256 sidecar; loading verifies it and names the damaged file. Deleting a damaged file
and resuming recomputes the phase that wrote it. A finished phase's `phase_done` event lists
the files it sealed (`files`), so deleting one with its sidecar recomputes that phase too,
and a checkpoint of a finished phase whose sidecar is missing (a run directory copied without
its .sha256 files) is refused, not trusted: resuming names it and says how to recompute it.
Its bytes are all there is to check. A sealed data file without its sidecar is still read:
its reader validates every record (that is how a data file edited on purpose is used).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selftaught.core import progress
from selftaught.core.errors import DataError, RunDirError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

PHASE_DONE = "phase_done"
LOCK_NAME = ".lock"
SUM_SUFFIX = ".sha256"
# What a run writes into its directory: a directory holding only these (and no finished
# phase) is a failed start that a fresh run may replace.
RUN_ENTRIES = frozenset(
    {"config.json", "metrics.jsonl", "checkpoints", "plots", "data", "report.md",
     "summary.json", "metrics_table.md", "run.log", LOCK_NAME}
)


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


def _ensure_dir(path: Path) -> None:
    """Create the run directory (and parents); a path naming a file is a RunDirError."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--run-dir {path} is a file, not a directory; choose a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(
            f"cannot create run directory {path}: {exc.strerror or exc}; choose another --run-dir"
        ) from None


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on run directory `path` (created if needed) while the block
    runs. A second process gets a RunDirError naming the PID that holds it. The lock is the
    kernel's (flock), so a killed process releases it."""
    path = Path(path)
    _ensure_dir(path)
    if fcntl is None:  # no flock on this platform: run unlocked
        yield
        return
    lock_path = path / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(
                f"run directory {path} is in use by process {holder} (it holds {lock_path}); "
                "wait for that process to finish, or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _sum_path(path: Path) -> Path:
    return path.with_name(path.name + SUM_SUFFIX)


def _is_run_entry(name: str) -> bool:
    return name in RUN_ENTRIES or (name.startswith(".") and name.endswith(".tmp"))


_CONFIG_KEYS = (("recipe", str), ("preset", str), ("seeds", int), ("config", dict))


class RunDir:
    """A run directory opened for writing (or for reading with `RunDir.open`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"
        self.metrics_path = self.path / "metrics.jsonl"
        self.log_path = self.path / "run.log"
        self._done: set[str] | None = None
        self._unsealed: list[Path] = []  # sealed files whose phase is not marked done yet
        self.plan: list[str] | None = None  # the phases of a complete run (RunDir.planned)
        self.complete: bool | None = None  # set by the core's report: whether the run
        # finished (None: not known); `stats.collect(partial=...)` reads it
        self._bar: Callable[[], Any] | None = None  # opens (once) the plan's progress bar

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls, path: Path, *, recipe: str, preset: str, seeds: int, config: dict, resume: bool
    ) -> RunDir:
        """Open `path` for a run. Without resume it must be new, empty or a failed start
        (a run none of whose phases finished: it is cleared); with resume it must hold a
        run of the same recipe (its stored config wins)."""
        path = Path(path)
        run = cls(path)
        cfg_path = path / "config.json"
        if path.exists() and not path.is_dir():
            raise RunDirError(
                f"--run-dir {path} is a file, not a directory; choose a directory path"
            )
        if resume:
            if not cfg_path.exists():
                raise RunDirError(f"cannot resume {path}: it has no config.json; start a new run")
            stored = run.read_config()
            if stored["recipe"] != recipe:
                raise RunDirError(
                    f"{path} holds a run of recipe {stored['recipe']!r}, not {recipe!r}; "
                    f"resume it with `selftaught run {stored['recipe']} --resume {_q(path)}`"
                )
            run._drop_unfinished_events()
            return run
        entries = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME) if (
            path.exists()) else []
        if entries:
            run._clear_failed_start(entries)
        _ensure_dir(path)
        meta = {"recipe": recipe, "preset": preset, "seeds": seeds, "config": config}
        atomic_write_text(cfg_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return run

    def _clear_failed_start(self, entries: list[str]) -> None:
        """Remove a run that failed before its first phase finished, or refuse."""
        path = self.path
        if not (path / "config.json").is_file():
            raise RunDirError(
                f"run directory {path} is not empty and holds no run (found {entries[0]!r}); "
                "choose another --run-dir"
            )
        stored = self.read_config()
        if self.done_phases():
            raise RunDirError(
                f"run directory {path} holds a {stored['recipe']} run with finished phases; "
                f"continue it with `selftaught run {stored['recipe']} --resume {_q(path)}`, "
                "or choose another --run-dir"
            )
        foreign = [e for e in entries if not _is_run_entry(e)]
        if foreign:
            raise RunDirError(
                f"run directory {path} holds a failed start (no phase finished) but also "
                f"{foreign[0]!r}, which runs do not write; remove it or choose another --run-dir"
            )
        for name in entries:  # a failed start: nothing finished, nothing to keep
            p = path / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """Open an existing run directory for reading/reporting."""
        path = Path(path)
        if not (path / "config.json").exists():
            raise RunDirError(f"{path} is not a run directory (no config.json)")
        return cls(path)

    def read_config(self) -> dict:
        """config.json, checked: {"recipe": str, "preset": str, "seeds": int >= 1,
        "config": object}. Anything else is a RunDirError naming the file and key."""
        cfg_path = self.path / "config.json"
        try:
            meta = json.loads(cfg_path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise RunDirError(f"cannot read {cfg_path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RunDirError(f"{cfg_path} is not valid UTF-8; the file is damaged") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{cfg_path} is not valid JSON ({exc})") from None
        hint = ("it must be a JSON object with keys recipe (string), preset (string), "
                "seeds (integer >= 1) and config (object)")
        if not isinstance(meta, dict):
            raise RunDirError(f"{cfg_path} holds a {type(meta).__name__}; {hint}")
        for key, tp in _CONFIG_KEYS:
            if key not in meta:
                raise RunDirError(f"{cfg_path} has no key {key!r}; {hint}")
            value = meta[key]
            bad = not isinstance(value, tp) or isinstance(value, bool)
            if bad or (key == "seeds" and value < 1):
                raise RunDirError(f"{cfg_path}: key {key!r} is {value!r:.60}; {hint}")
        return meta

    def recompute_hint(self, phase: str | None) -> str:
        """A runnable command that recomputes `phase` (deleting its files comes first)."""
        try:
            recipe = self.read_config()["recipe"]
        except RunDirError:
            recipe = "RECIPE"
        if phase is None:
            return (f"start again in a new directory: `selftaught run {recipe} "
                    "--run-dir NEW_DIR` with this run's flags")
        return (f"phase {phase!r} (and the phases finished after it) are recomputed by "
                f"`selftaught run {recipe} --resume {_q(self.path)}`")

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
        fix = ("delete that line, or everything from it on, and resume (unfinished phases are "
               "recomputed), or start a new --run-dir")
        with open(self.metrics_path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                cut = not raw.endswith(b"\n")  # a write cut by a kill: dropped
                where = f"{self.metrics_path}: line {i}"
                try:
                    rec = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    if cut:
                        continue
                    raise DataError(f"{where} is not valid UTF-8 (damaged); {fix}") from None
                except json.JSONDecodeError:
                    if cut:
                        continue
                    nul = " (it holds NUL bytes: damaged)" if b"\x00" in raw else ""
                    raise DataError(f"{where} is not valid JSON{nul}; {fix}") from None
                if not (
                    isinstance(rec, dict)
                    and isinstance(rec.get("event"), str)
                    and isinstance(rec.get("phase"), (str, type(None)))
                ):
                    if cut:
                        continue
                    raise DataError(
                        f"{where} is not an event (a JSON object with a string 'event' and an "
                        f"optional string 'phase'): {raw[:60].decode(errors='replace')!r}; {fix}"
                    )
                events.append(rec)
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
        raw = self._raw_events()
        forget = self._phases_to_recompute(raw)
        done = {r["phase"] for r in raw if r["event"] == PHASE_DONE} - forget
        keep = [r for r in raw if r.get("phase") is None or r.get("phase") in done]
        text = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in keep)
        if self.metrics_path.exists():
            atomic_write_text(self.metrics_path, text)

    def _phases_to_recompute(self, raw: list[dict]) -> set[str]:
        """Phases whose sealed files were deleted (e.g. after a checksum mismatch), and every
        phase finished after the first of them, so that the log keeps its order. A checkpoint
        of a finished phase that is there without its sidecar is a DataError (it cannot be
        verified), raised before anything is changed."""
        order = [r["phase"] for r in raw if r["event"] == PHASE_DONE]
        lost = set()
        for rel, phase in _writers(raw).items():
            path = self.path / rel
            if _sum_path(path).exists():
                continue
            if not path.exists():
                lost.add(phase)  # the file and its sidecar were both deleted
            elif path.parent == self.checkpoints:
                raise DataError(self._unverifiable(path, phase))
        for side in sorted(self.path.rglob("*" + SUM_SUFFIX)):
            target = side.with_name(side.name[: -len(SUM_SUFFIX)])
            if target.exists():
                continue
            phase = self._read_sum(side).get("phase")
            if isinstance(phase, str) and phase in order:
                lost.add(phase)
            side.unlink()
        if not lost:
            return set()
        first = min(order.index(p) for p in lost)
        return set(order[first:])

    # ------------------------------------------------------------------ phases
    def done_phases(self) -> set[str]:
        return {r["phase"] for r in self._raw_events() if r["event"] == PHASE_DONE}

    def phase_done(self, phase: str) -> bool:
        return phase in self.done_phases()

    def mark_phase_done(self, phase: str, wall_seconds: float, **fields: Any) -> None:
        """Record `phase` as finished (with the files it sealed, its wall time and `fields`),
        and report it: one plain line appended to run.log, and printed to stdout when the
        output is not a terminal (`progress.phase_line`). Scalar `fields` (a key metric,
        e.g. `test_pass1=0.62`) appear in that line."""
        files = []
        for path in self._unsealed:  # the files this phase wrote remember it
            side = _sum_path(path)
            info = self._read_sum(side)
            info["phase"] = phase
            atomic_write_text(side, json.dumps(info, sort_keys=True) + "\n")
            with contextlib.suppress(ValueError):  # a file outside the run: not listed
                files.append(path.relative_to(self.path).as_posix())
        self._unsealed = []
        if files:
            fields = {**fields, "files": sorted(set(files))}
        self.log(PHASE_DONE, phase=phase, wall_seconds=float(wall_seconds), **fields)
        self._report_phase(phase, float(wall_seconds), to_jsonable(fields))

    @contextlib.contextmanager
    def planned(self, plan: Sequence[str] | None, description: str = "phases") -> Iterator[None]:
        """Within the block, `phase` checks each name against `plan` (the phase names of a
        complete run, `Recipe.phases`; None: no check) and advances one progress bar over
        the plan, opened at the first phase (a recipe that runs no `phase` shows none)."""
        with contextlib.ExitStack() as stack:
            total = len(plan) if plan is not None else None
            opened: list[Any] = []

            def bar():
                if not opened:
                    opened.append(stack.enter_context(progress.bar(description, total)))
                return opened[0]

            self.plan = list(plan) if plan is not None else None
            self._bar = bar
            try:
                yield
            finally:
                self.plan, self._bar = None, None

    def phase(self, name: str, work: Callable[..., Any], *args: Any, restore: Any = None,
              **kwargs: Any) -> Any:
        """Run phase `name` once: `work(log, *args, **kwargs)` -> the pytree to checkpoint
        (None: none). (Passing the arguments here, not in a lambda, binds a loop's values.)

        Done before (a resumed run): nothing runs; its checkpoint is loaded (checksum
        verified) into the structure of `restore` and returned, or None if the phase saved
        none. Without `restore` the checkpoint comes back as saved (nested dicts), so `work`
        must then return a tree of dicts and arrays (e.g. flax params). Otherwise: `work`
        runs with `log`, a logger bound to the phase (its events count once the phase is
        done); the result is checked against `restore`'s structure and shapes, saved as
        checkpoint `name` and returned; the phase is marked done with its wall time (work +
        save) and `log.headline` fields. Either way the plan's progress bar advances."""
        if self.plan is not None and name not in self.plan:
            shown = ", ".join(self.plan[:6]) + (" ..." if len(self.plan) > 6 else "")
            raise RuntimeError(
                f"phase {name!r} is not in the recipe's plan ({shown}); the recipe's "
                "phases() must list every phase its run() runs (internal error)")
        bar = self._bar() if self._bar is not None else None  # before the work's own bars
        if self.phase_done(name):
            result = None
            if restore is not None or self.has_checkpoint(name):
                result = self.load_checkpoint(name, restore)
                if restore is not None:
                    self._check_fits(name, result, restore)
        else:
            timer = Timer()
            log = PhaseLog(self, name)
            recipe = self._recipe_name()
            with progress.logging_to(
                    lambda text: self._append_line(f"[{recipe}] {name}: {text}")):
                result = work(log, *args, **kwargs)
            if result is not None:
                _check_restorable(name, result, restore)
                self.save_checkpoint(name, result)
            self.mark_phase_done(name, timer(), **log.fields)
        if bar is not None:
            bar.advance()
        return result

    def _check_fits(self, name: str, tree: Any, like: Any) -> None:
        """DataError (one line) unless a loaded checkpoint has `like`'s structure and shapes."""
        if _shapes(tree) == _shapes(like):
            return
        path = self.checkpoint_path(name)
        raise DataError(
            f"checkpoint {path} does not fit the model of this config (its structure or "
            f"shapes differ); delete it (`rm {_q(path)}`), then {self.recompute_hint(name)}")

    def _report_phase(self, phase: str, wall_seconds: float, fields: dict) -> None:
        self._append_line(progress.phase_done_text(self._recipe_name(), phase, wall_seconds,
                                                   fields))

    def _recipe_name(self) -> str:
        try:
            return self.read_config()["recipe"]
        except RunDirError:
            return "?"

    def _append_line(self, line: str) -> None:
        """One plain line appended to run.log (time-stamped) and printed to stdout when the
        output is not a terminal (`progress.phase_line`)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{stamp} {line}\n".encode())
        finally:
            os.close(fd)
        progress.phase_line(line)

    def wall_seconds(self) -> float:
        """Compute time of all finished phases (a resumed run adds its sessions)."""
        return float(sum(r.get("wall_seconds", 0.0) for r in self.events(PHASE_DONE)))

    # ------------------------------------------------------------------ integrity
    def seal(self, path: Path, data: bytes | None = None) -> Path:
        """Record the SHA-256 of a file this run wrote (a checkpoint or a data file) in
        PATH.sha256; the next `mark_phase_done` records that phase there too."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes() if data is None else data).hexdigest()
        info = {"file": path.name, "sha256": digest, "phase": None}
        atomic_write_text(_sum_path(path), json.dumps(info, sort_keys=True) + "\n")
        self._unsealed.append(path)
        return path

    def _read_sum(self, side: Path) -> dict:
        try:
            info = json.loads(side.read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            raise DataError(
                f"checksum file {side} is damaged; delete it and the file beside it, then "
                f"{self.recompute_hint(None)}"
            )
        return info

    def verify(self, path: Path, data: bytes | None = None, *, required: bool = False) -> bytes:
        """The bytes of a file this run wrote, checked against its sealed SHA-256. A
        mismatch is a DataError that names the file and how to recompute it. Without a
        sidecar the file is returned unchecked (a data file edited on purpose: its reader
        validates it), unless `required` (checkpoints): then it is a DataError too."""
        path = Path(path)
        side = _sum_path(path)
        info = self._read_sum(side) if side.exists() else None
        if info is None and required and (data is not None or path.exists()):
            raise DataError(self._unverifiable(path, self._writer_of(path)))
        if data is None:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                phase = info.get("phase") if info else None
                raise RunDirError(
                    f"{path} is missing; {self.recompute_hint(phase)}"
                ) from None
        if info is not None and hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise DataError(
                f"{path} is damaged: its SHA-256 differs from the one recorded in {side.name} "
                f"when it was written; delete it (`rm {_q(path)}`), then "
                + self.recompute_hint(info.get("phase"))
            )
        return data

    def _writer_of(self, path: Path) -> str | None:
        """The finished phase that sealed `path`, from the phase_done events (None for a
        run written before they listed their files)."""
        try:
            rel = Path(path).relative_to(self.path).as_posix()
        except ValueError:
            return None
        return _writers(self._raw_events()).get(rel)

    def _unverifiable(self, path: Path, phase: str | None) -> str:
        side = _sum_path(path).name
        head = (f"{path} has no checksum file {side} beside it, so it cannot be verified (was "
                f"the run directory copied without its .sha256 files?); copy {side} from the "
                "run it came from, or ")
        if phase is None:  # nothing says which phase wrote it: it cannot be recomputed alone
            return head + self.recompute_hint(None)
        return head + f"delete it (`rm {_q(path)}`), then " + self.recompute_hint(phase)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, name: str) -> Path:
        return self.checkpoints / f"{name.replace('/', '__')}.msgpack"

    def has_checkpoint(self, name: str) -> bool:
        return self.checkpoint_path(name).exists()

    def save_checkpoint(self, name: str, tree: Any) -> Path:
        """Save a pytree (dicts/lists of arrays and scalars, flax params) atomically, with
        its checksum."""
        from flax import serialization

        state = serialization.to_state_dict(tree)
        state = _to_numpy(state)
        path = self.checkpoint_path(name)
        data = serialization.msgpack_serialize(state)
        atomic_write_bytes(path, data)
        self.seal(path, data)
        return path

    def load_checkpoint(self, name: str, target: Any = None) -> Any:
        """Load a checkpoint (checksum verified); with `target`, restore into its structure."""
        from flax import serialization

        path = self.checkpoint_path(name)
        if not path.exists() and not _sum_path(path).exists():
            raise RunDirError(f"checkpoint {name!r} missing in {self.path}; rerun without --resume")
        data = self.verify(path, required=True)
        phase = self._read_sum(_sum_path(path)).get("phase") if _sum_path(path).exists() else None
        try:
            state = serialization.msgpack_restore(data)
        except Exception:  # truncated, overwritten, not msgpack at all
            raise DataError(
                f"checkpoint {path} is not a readable msgpack file (truncated or damaged); "
                f"delete it (`rm {_q(path)}`), then {self.recompute_hint(phase)}"
            ) from None
        if target is None:
            return state
        try:
            return serialization.from_state_dict(target, state)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"checkpoint {path} does not fit the model of this config ({str(exc)[:120]}); "
                f"delete it (`rm {_q(path)}`), then {self.recompute_hint(phase)}"
            ) from None

    # ------------------------------------------------------------------ outputs
    def write_text(self, relpath: str, text: str) -> Path:
        out = self.path / relpath
        atomic_write_text(out, text)
        return out

    def write_json(self, relpath: str, obj: Any) -> Path:
        return self.write_text(
            relpath, json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=True) + "\n"
        )


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _writers(raw: list[dict]) -> dict[str, str]:
    """Each sealed file (path relative to the run directory) -> the last finished phase that
    wrote it, from the `files` of the phase_done events."""
    out: dict[str, str] = {}
    for r in raw:
        files = r.get("files") if r["event"] == PHASE_DONE else None
        if isinstance(files, list):
            out.update({f: r["phase"] for f in files if isinstance(f, str)})
    return out


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return np.asarray(tree)
    return tree


class PhaseLog:
    """The logger `RunDir.phase` hands to a phase's work: `log(event, **fields)` appends an
    event tagged with the phase; `log.headline(**fields)` records key metrics in the phase's
    `phase_done` event, shown in its done line (e.g. `test_pass1=0.62`)."""

    def __init__(self, run_dir: RunDir, phase: str):
        self.run_dir, self.phase = run_dir, phase
        self.fields: dict[str, Any] = {}

    def __call__(self, event: str, **fields: Any) -> None:
        self.run_dir.log(event, phase=self.phase, **fields)

    def headline(self, **fields: Any) -> None:
        self.fields.update(fields)


def _shapes(tree: Any) -> tuple:
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [tuple(np.shape(x)) for x in leaves]


def _check_restorable(name: str, result: Any, restore: Any) -> None:
    """An internal error unless `result` comes back from its checkpoint as the same tree:
    shaped like `restore`, or (without it) already a tree of dicts and arrays."""
    from flax import serialization

    like = serialization.to_state_dict(result) if restore is None else restore
    if _shapes(result) != _shapes(like):
        what = ("is not shaped like its `restore` target" if restore is not None else
                "is not a tree of dicts and arrays, and no `restore` target was given")
        raise RuntimeError(
            f"the result of phase {name!r} {what}, so a resumed run could not get it back "
            "from its checkpoint; pass restore= a tree shaped like the result (internal error)")


class Timer:
    """Wall-clock seconds since construction (for phase timing)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
