"""Small-scale proxies for large-scale training instabilities (Wortsman et al., 2023;
design lm.md §8).

    selftaught run instability-proxies --preset default
    # -> report.md: final validation loss vs learning rate per width and intervention,
    #    max attention logit and log Z at high lr, LR sensitivity with 95% CIs over seeds

Data: the Python standard library's own source files (found via `sysconfig`, nothing is
downloaded), byte-level (vocabulary 256), split *by file* into train and validation.

Algorithm box:
    for each width, for qk-layernorm in {off, on} (structural: one compiled program each):
        train every (lr, z-loss in {0, 1e-4}, seed) cell at once with lm.sweep
            (jax.jit(jax.vmap(train)) over the cells; a diverged cell is a result)
        record per cell: final validation loss, max attention logit, attention entropy,
            output log Z (mean over the last 10% of steps), the step it diverged at
    extra interventions at `extra_width` on top of qk-layernorm + z-loss: long warmup,
        independent weight decay, simple muParam, AdamW eps = 1e-15
    LR sensitivity(intervention) = mean_lr min(loss(lr), loss_init) - min_lr loss(lr), per seed
Claims (each with a 95% bootstrap CI over seeds):
    attention-logit growth: at the highest lr, max attention logit without qk-layernorm
        exceeds the qk-layernorm one (smallest width);
    output-logit divergence: |log Z| at the highest lr without z-loss exceeds the z-loss one;
    qk-layernorm lowers LR sensitivity; z-loss lowers LR sensitivity (with qk-layernorm);
    combined (qk-layernorm + z-loss): final loss within `band` nats of its best over at
        least `flat_decades` decades of lr.

Default preset (widths 16/32/64, 8 lrs 3e-4..1, 3 seeds, 200 steps of 8 x 64 bytes; 768
training runs in 8 compiled programs), measured with `selftaught run instability-proxies
--preset default`: 1067 CPU-s (1008 user + 59 sys), peak RSS 4.7 GiB, 77 min wall on the
shared 2-core machine at load 5-16 (idle not measured; ~9-12 min estimated from the CPU
seconds). 2 of 5 claims hold:
    attention-logit growth, fixed by qk-layernorm (width 16, lr 1): max attention logit
        4.2e5 without vs 135 with, difference 4.2e5 [2.3e5, 7.9e5] (holds; at width 64
        6.1e6 vs 130);
    qk-layernorm lowers LR sensitivity (width 16): 0.555 -> 0.490, difference +0.065
        [0.029, 0.114] (holds);
    z-loss fixes log Z drift (width 16, lr 1): |log Z| 5.96 vs 5.85, difference +0.11
        [-0.16, 0.46] (does NOT hold: 200 steps are too few for log Z to drift far at
        width 16; at width 64 log Z reaches 17.7 without z-loss and 14.1 with it);
    z-loss lowers LR sensitivity on top of qk-layernorm: -0.001 [-0.028, 0.018] (does not
        hold);
    qk-layernorm + z-loss keeps the final loss within 0.25 nats of its best over >= 2
        decades of lr at every width: 1.67 decades [1.48, 2] at the worst width (does not
        hold).
The loss-vs-lr curves have the paper's shape (the baseline's optimum is narrow and its loss
at lr 1 rises to 4.58 at width 64; qk-layernorm flattens lrs 0.03-0.3), but at 200 steps
the differences the z-loss makes are within seed noise.
"""

from __future__ import annotations

import dataclasses
import functools
import sysconfig
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import Recipe, Report
from selftaught.core.errors import ConfigError, check, check_at_least_one
from selftaught.core.recipe import Claim
from selftaught.lm import sweep as sw
from selftaught.lm.model import Transformer, TransformerConfig

VOCAB = 256  # bytes


@dataclasses.dataclass(frozen=True)
class InstabilityConfig:
    """LR x width sweeps of a byte-level LM on the Python standard library's sources."""

    seed: int = 0
    """first seed; a seed sets both weight init and data order"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    widths: tuple[int, ...] = (16, 32, 64)
    """model widths d_model (head dim `head_dim`, so heads = width / head_dim)"""
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    """peak learning rates of the sweep (log-spaced; >= 3 orders of magnitude)"""
    n_layers: int = 2
    """transformer layers"""
    head_dim: int = 16
    """attention head dimension"""
    seq_len: int = 64
    """training context (bytes)"""
    steps: int = 200
    """optimizer steps per run"""
    batch_size: int = 8
    """sequences per step"""
    warmup_steps: int = 20
    """linear warmup steps of every run (the 'long warmup' intervention uses warmup_long)"""
    warmup_long: int = 100
    """warmup of the long-warmup intervention"""
    weight_decay: float = 1e-4
    """weight decay (coupled: multiplied by lr_t, as AdamW; independent: by lr_t / lr)"""
    z_loss: float = 1e-4
    """z-loss coefficient of the z-loss intervention (paper: 1e-4 log^2 Z)"""
    eps: float = 1e-8
    """AdamW epsilon of every run but the small-eps intervention (1e-15)"""
    extra_width: int = 32
    """width of the extra interventions (warmup, independent wd, muParam, eps); 0 = skip"""
    mup_base_width: int = 16
    """simple muParam: hidden-matrix lr scaled by mup_base_width / width"""
    train_bytes: int = 2_000_000
    """bytes of training text taken from the train files"""
    val_windows: int = 128
    """validation windows of seq_len bytes (from the validation files)"""
    val_every: int = 10
    """1 in val_every source files (by a hash of its path) is a validation file"""
    band: float = 0.25
    """combined claim: losses within this many nats of the best count as flat"""
    flat_decades: float = 2.0
    """combined claim: the flat lr range must span at least this many decades"""
    chunk: int = 100
    """steps per compiled chunk (a checkpoint per chunk)"""

    def validate(self) -> None:
        check(len(self.lrs) >= 1, "the lr grid is empty; give at least one --lrs value")
        check(all(lr > 0 for lr in self.lrs), f"lrs must be positive, got {self.lrs}")
        check(len(self.widths) >= 1, "give at least one --widths value")
        for w in self.widths:
            check(w % self.head_dim == 0 and w >= self.head_dim,
                  f"width {w} must be a multiple of head_dim={self.head_dim}")
        check(self.extra_width == 0 or self.extra_width % self.head_dim == 0,
              f"extra_width={self.extra_width} must be 0 or a multiple of head_dim")
        check_at_least_one(self, "num_seeds", "n_layers", "head_dim", "seq_len", "steps",
                           "batch_size", "val_windows", "chunk")
        check(self.val_every >= 2, f"val_every must be at least 2, got {self.val_every}")
        check(0 <= self.warmup_steps <= self.steps and 0 <= self.warmup_long <= self.steps,
              f"warmup_steps and warmup_long must be in [0, steps={self.steps}]")
        check(self.train_bytes > 10 * self.seq_len, "train_bytes is too small for seq_len")


# ----------------------------------------------------------------------------- data
def stdlib_files() -> list[Path]:
    """The standard library's .py files (sorted), found via sysconfig; no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if "site-packages" not in p.parts and "test" not in p.parts[len(root.parts):])
    if not files:
        raise ConfigError(f"no Python source files found under {root}; this recipe reads the "
                          "standard library's sources, install a full Python")
    return files


def is_val_file(rel: str, val_every: int) -> bool:
    return zlib.crc32(rel.encode()) % val_every == 0


@functools.lru_cache(maxsize=4)
def load_text(train_bytes: int, val_bytes: int, val_every: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) uint8 streams: files concatenated in sorted order, split by file."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, val, nt, nv = [], [], 0, 0
    for p in stdlib_files():
        rel = str(p.relative_to(root))
        is_val = is_val_file(rel, val_every)
        if (nv >= val_bytes) if is_val else (nt >= train_bytes):
            if nt >= train_bytes and nv >= val_bytes:
                break
            continue
        data = p.read_bytes()
        (val if is_val else train).append(data)
        if is_val:
            nv += len(data)
        else:
            nt += len(data)
    tr = np.frombuffer(b"".join(train), np.uint8)[:train_bytes]
    va = np.frombuffer(b"".join(val), np.uint8)[:val_bytes]
    return tr.astype(np.int32), va.astype(np.int32)


def make_data(cfg: InstabilityConfig) -> dict:
    T = cfg.seq_len
    train, val = load_text(cfg.train_bytes, cfg.val_windows * (T + 1), cfg.val_every)
    check(len(val) >= cfg.val_windows * (T + 1),
          f"only {len(val)} validation bytes; lower --val-windows or --val-every")
    return {"train": jnp.asarray(train), "val": jnp.asarray(val.reshape(cfg.val_windows, T + 1))}


def make_batch_fn(cfg: InstabilityConfig):
    T, B = cfg.seq_len, cfg.batch_size

    def batch_fn(data, rng):
        stream = data["train"]
        off_B = jax.random.randint(rng, (B,), 0, stream.shape[0] - T - 1)
        win_BxT1 = jax.vmap(lambda o: jax.lax.dynamic_slice(stream, (o,), (T + 1,)))(off_B)
        return {"tokens": win_BxT1[:, :-1], "targets": win_BxT1[:, 1:],
                "mask": jnp.ones((B, T), jnp.float32)}

    return batch_fn


def model_config(cfg: InstabilityConfig, width: int, qk_ln: bool) -> TransformerConfig:
    return TransformerConfig(vocab_size=VOCAB, max_len=cfg.seq_len, d_model=width,
                             n_layers=cfg.n_layers, n_heads=width // cfg.head_dim,
                             qk_layernorm=qk_ln)


def make_eval_fn(mcfg: TransformerConfig):
    model = Transformer(mcfg)

    def eval_fn(params, data):
        win = data["val"]
        logits = model.apply(params, win[:, :-1])
        xent, logz, _ = sw.xent_and_logz(logits, win[:, 1:], jnp.ones(win[:, 1:].shape))
        return {"val_loss": xent, "val_log_z": logz}

    return eval_fn


# ----------------------------------------------------------------------------- programs
@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled sweep program: a width and the structural switches; its cells vary
    lr, z-loss, warmup, eps and the seed."""

    name: str
    width: int
    qk_ln: bool
    independent_wd: bool = False
    mup: bool = False


INTERVENTIONS = {  # name -> (program switches, traced overrides)
    "baseline": (dict(qk_ln=False), dict(z_loss=0.0)),
    "z_loss": (dict(qk_ln=False), dict(z_loss=1.0)),  # 1.0 = the config's z_loss
    "qk_ln": (dict(qk_ln=True), dict(z_loss=0.0)),
    "qk_ln+z_loss": (dict(qk_ln=True), dict(z_loss=1.0)),
    "+warmup_long": (dict(qk_ln=True), dict(z_loss=1.0, warmup="long")),
    "+eps_1e-15": (dict(qk_ln=True), dict(z_loss=1.0, eps=1e-15)),
    "+indep_wd": (dict(qk_ln=True, independent_wd=True), dict(z_loss=1.0)),
    "+mup": (dict(qk_ln=True, mup=True), dict(z_loss=1.0)),
}
MAIN = ("baseline", "z_loss", "qk_ln", "qk_ln+z_loss")
EXTRA = ("+warmup_long", "+eps_1e-15", "+indep_wd", "+mup")


def plan(cfg: InstabilityConfig) -> dict[str, tuple[Program, list[tuple[str, dict]]]]:
    """{program name: (Program, [(intervention, traced hp of one lr/seed-free cell)])}."""
    out: dict[str, tuple[Program, list]] = {}
    todo = [(w, iv) for w in cfg.widths for iv in MAIN]
    if cfg.extra_width:
        todo += [(cfg.extra_width, iv) for iv in EXTRA]
    for width, iv in todo:
        sw_flags, traced = INTERVENTIONS[iv]
        prog = Program("", width, **sw_flags)
        tags = [t for t, on in (("qkln", prog.qk_ln), ("indepwd", prog.independent_wd),
                                ("mup", prog.mup)) if on]
        prog = dataclasses.replace(prog, name=f"w{width}/" + ("+".join(tags) or "plain"))
        hp = dict(z_loss=cfg.z_loss * traced.get("z_loss", 0.0), eps=traced.get("eps", cfg.eps),
                  warmup_steps=cfg.warmup_long if traced.get("warmup") else cfg.warmup_steps,
                  weight_decay=cfg.weight_decay)
        out.setdefault(prog.name, (prog, []))[1].append((iv, hp))
    return out


def cells_of(cfg: InstabilityConfig, variants, seeds):
    """Per-cell hp dicts of a program: variants x lrs x seeds, with their labels."""
    cells, labels = [], []
    for iv, hp in variants:
        for lr in cfg.lrs:
            for s in seeds:
                cells.append(dict(hp, lr=lr, init_seed=s, data_seed=s))
                labels.append((iv, lr, s))
    return cells, labels


@functools.lru_cache(maxsize=32)
def _sweep(cfg: InstabilityConfig, prog: Program) -> sw.Sweep:
    mcfg = model_config(cfg, prog.width, prog.qk_ln)
    scfg = sw.SweepConfig(total_steps=cfg.steps, batch_size=cfg.batch_size, chunk=cfg.chunk,
                          independent_wd=prog.independent_wd,
                          mup_base_width=cfg.mup_base_width if prog.mup else 0)
    return sw.make_sweep(mcfg, scfg, make_batch_fn(cfg), make_eval_fn(mcfg))


def _decimate(x: np.ndarray, points: int = 30) -> np.ndarray:
    """Means over `points` equal blocks of steps (NaN stays NaN)."""
    n = len(x) // points * points
    return x[:n].reshape(points, -1).mean(axis=1) if n else x


# ----------------------------------------------------------------------------- run
def phases(cfg: InstabilityConfig, seeds: list[int]) -> list[str]:
    """One phase per structural program (all its cells, every seed, in one vmapped grid)."""
    return list(plan(cfg))


def run(cfg: InstabilityConfig, run_dir, seeds: list[int]) -> None:
    data = make_data(cfg)
    for name, (prog, variants) in plan(cfg).items():
        run_dir.phase(name, train_program, cfg, run_dir, name, prog, variants, seeds, data)


def train_program(log, cfg: InstabilityConfig, run_dir, name: str, prog: Program, variants,
                  seeds: list[int], data) -> None:
    """Every (intervention, lr, seed) cell of one structural program trained together (one
    `lm.sweep` grid), one `cell` event each: final validation loss and log Z, divergence
    step, attention-logit / entropy / log Z over the last 10% of steps and their curves."""
    sweep = _sweep(cfg, prog)
    cells, labels = cells_of(cfg, variants, seeds)
    hp = sw.table(cells)
    init_loss = _init_loss(sweep, hp, data)
    # the grid's mid-phase checkpoints under their own name: the phase returns no result,
    # so a resumed run does not load them once the phase is done
    res = sw.run_grid(sweep, hp, data, run_dir=run_dir, name=f"{name}/grid",
                      description=f"{name} ({len(cells)} cells)")
    tail = max(1, cfg.steps // 10)
    c = res.curves
    for i, (iv, lr, s) in enumerate(labels):
        log("cell", program=name, intervention=iv, width=prog.width, lr=lr, seed=s,
            init_loss=float(init_loss[i]),
            val_loss=float(res.evals["val_loss"][i]),
            val_log_z=float(res.evals["val_log_z"][i]),
            diverged_at=int(res.diverged_at[i]),
            attn_logit_max=float(np.mean(c["attn_logit_max"][i, -tail:])),
            attn_entropy=float(np.mean(c["attn_entropy"][i, -tail:])),
            log_z=float(np.mean(c["log_z"][i, -tail:])),
            curve_attn_logit_max=_decimate(c["attn_logit_max"][i]),
            curve_log_z=_decimate(c["log_z"][i]),
            curve_loss=_decimate(c["loss"][i]))
    log.headline(cells=len(cells))


def _init_loss(sweep: sw.Sweep, hp, data) -> np.ndarray:
    """Validation loss of each cell's initial parameters (the 'loss at init')."""
    states = sweep.init({k: jnp.asarray(v) for k, v in hp.items()})
    return np.asarray(sweep.evaluate(states, data)["val_loss"])


# ----------------------------------------------------------------------------- analysis
def lr_sensitivity(loss_L: np.ndarray, init_loss: float) -> float:
    """mean_lr min(loss(lr), loss_init) - min_lr loss(lr); a diverged (NaN) run counts as
    loss_init."""
    capped = np.minimum(np.where(np.isfinite(loss_L), loss_L, np.inf), init_loss)
    return float(capped.mean() - capped.min())


def flat_decades(lrs, loss_L: np.ndarray, band: float) -> float:
    """Decades spanned by the longest run of consecutive lrs whose loss is within `band`
    of the best (a diverged run breaks the run)."""
    lrs = np.asarray(lrs, np.float64)
    order = np.argsort(lrs)
    lrs, loss = lrs[order], np.asarray(loss_L, np.float64)[order]
    ok = np.isfinite(loss) & (loss <= np.nanmin(np.where(np.isfinite(loss), loss, np.nan))
                              + band) if np.isfinite(loss).any() else np.zeros(len(loss), bool)
    best, start = 0.0, None
    for i, good in enumerate(ok):
        if good and start is None:
            start = i
        if good:
            best = max(best, float(np.log10(lrs[i] / lrs[start])))
        else:
            start = None
    return best


def _table(run_dir) -> dict[tuple[str, int], dict]:
    """{(intervention, width): {"lr": [L], "seed": [S], field: S x L arrays}}."""
    out: dict = {}
    for e in run_dir.events("cell"):
        out.setdefault((e["intervention"], e["width"]), []).append(e)
    tab = {}
    for key, evs in out.items():
        lrs = sorted({e["lr"] for e in evs})
        seeds = sorted({e["seed"] for e in evs})
        idx = {(e["seed"], e["lr"]): e for e in evs}
        t = {"lr": lrs, "seed": seeds}
        for f in ("val_loss", "attn_logit_max", "attn_entropy", "log_z", "init_loss",
                  "diverged_at"):
            t[f] = np.array([[idx[(s, lr)][f] for lr in lrs] for s in seeds], np.float64)
        t["curve_attn_logit_max"] = {(s, lr): np.asarray(idx[(s, lr)]["curve_attn_logit_max"],
                                                         np.float64)
                                     for s in seeds for lr in lrs}
        tab[key] = t
    return tab


def _ci(x) -> stats.Estimate:
    x = np.asarray(x, np.float64)
    return stats.paired_difference_ci(x, np.zeros_like(x))


def report(cfg: InstabilityConfig, run_dir, seeds: list[int]) -> Report:
    tab = _table(run_dir)
    md: list[str] = []
    claims: list[Claim] = []
    if not tab:
        return Report([], "No finished programs yet.")
    widths = sorted({w for _, w in tab})
    top = max(cfg.lrs)
    md += ["## Final validation loss (nats/byte) vs learning rate", "",
           f"Mean over {len(seeds)} seed(s); `div` = every seed diverged (NaN/inf), "
           "`k/n div` = some did. Loss at init ~ ln 256 = 5.55.", ""]
    for w in widths:
        ivs = [iv for iv in INTERVENTIONS if (iv, w) in tab]
        lrs = tab[(ivs[0], w)]["lr"]
        rows = []
        for iv in ivs:
            t = tab[(iv, w)]
            row = [iv]
            for j in range(len(lrs)):
                col = t["val_loss"][:, j]
                nd = int((~np.isfinite(col)).sum())
                if nd == len(col):
                    row.append("div")
                else:
                    row.append(f"{np.nanmean(col):.3f}" + (f" ({nd}/{len(col)} div)" if nd else ""))
            rows.append(row)
        md += [f"### width {w}", "",
               stats.markdown_table(["intervention", *(f"{lr:g}" for lr in lrs)], rows), ""]
    _plot_loss_vs_lr(run_dir.plots / "loss_vs_lr.png", tab, widths)
    md += ["![loss vs lr](plots/loss_vs_lr.png)", ""]

    # instabilities at the top lr
    md += ["## Instabilities at the highest learning rate", "",
           f"lr = {top:g}; mean over the last 10% of steps (over seeds; NaN = diverged).", ""]
    rows = []
    for w in widths:
        for iv in MAIN:
            if (iv, w) not in tab:
                continue
            t = tab[(iv, w)]
            j = t["lr"].index(top) if top in t["lr"] else -1
            f = lambda k, t=t, j=j: f"{np.nanmean(t[k][:, j]):.3g}" if np.isfinite(
                t[k][:, j]).any() else "div"
            rows.append([w, iv, f("attn_logit_max"), f("attn_entropy"), f("log_z"),
                         f("val_loss")])
    md.append(stats.markdown_table(
        ["width", "intervention", "max attention logit", "attention entropy", "log Z",
         "val loss"], rows))
    w0 = widths[0]
    if ("baseline", w0) in tab and ("qk_ln", w0) in tab:
        _plot_attn_curves(run_dir.plots / "attn_logit_vs_step.png", tab, w0, top, cfg.steps)
        md += ["", "![max attention logit vs step](plots/attn_logit_vs_step.png)"]
        b, q = tab[("baseline", w0)], tab[("qk_ln", w0)]
        j = b["lr"].index(top)
        # a diverged baseline run counts as unbounded growth
        diff = np.where(np.isfinite(b["attn_logit_max"][:, j]), b["attn_logit_max"][:, j],
                        1e6) - q["attn_logit_max"][:, j]
        claims.append(stats.claim_greater(
            "attn_logit_growth_fixed_by_qk_ln",
            f"width {w0}, lr {top:g}: max attention logit without qk-layernorm minus with it "
            "> 0 (a diverged run counts as 1e6)", _ci(diff), unit="training seeds"))
    if ("baseline", w0) in tab and ("z_loss", w0) in tab:
        b, z = tab[("baseline", w0)], tab[("z_loss", w0)]
        j = b["lr"].index(top)
        absz = lambda a: np.where(np.isfinite(a), np.abs(a), 1e6)
        diff = absz(b["log_z"][:, j]) - absz(z["log_z"][:, j])
        claims.append(stats.claim_greater(
            "logit_divergence_fixed_by_z_loss",
            f"width {w0}, lr {top:g}: |log Z| without z-loss minus with z-loss > 0", _ci(diff),
            unit="training seeds"))

    # LR sensitivity
    sens = {}
    for (iv, w), t in tab.items():
        init = np.nanmean(t["init_loss"], axis=1)
        sens[(iv, w)] = np.array([lr_sensitivity(t["val_loss"][i], init[i])
                                  for i in range(len(t["seed"]))])
    md += ["", "## LR sensitivity", "",
           "mean over the lr grid of min(loss(lr), loss_init) - min_lr loss(lr), per seed; "
           "mean and 95% bootstrap CI over seeds (lower is better).", ""]
    bars, rows = {}, []
    for w in widths:
        for iv in INTERVENTIONS:
            if (iv, w) in sens:
                est = _ci(sens[(iv, w)])
                bars[f"{iv} w{w}"] = est
                rows.append([w, iv, f"{est[0]:.3f}", f"[{est[1]:.3f}, {est[2]:.3f}]"])
    md.append(stats.markdown_table(["width", "intervention", "LR sensitivity", "95% CI"], rows))
    stats.plot_bars(run_dir.plots / "lr_sensitivity.png", bars, ylabel="LR sensitivity (nats)",
                    title="lower = less sensitive")
    md += ["", "![LR sensitivity](plots/lr_sensitivity.png)"]
    if all((iv, w0) in sens for iv in ("baseline", "qk_ln")):
        claims.append(stats.claim_greater(
            "qk_ln_lowers_lr_sensitivity",
            f"width {w0}: LR sensitivity(baseline) - LR sensitivity(qk-layernorm) > 0",
            _ci(sens[("baseline", w0)] - sens[("qk_ln", w0)]), unit="training seeds"))
    if all((iv, w0) in sens for iv in ("qk_ln", "qk_ln+z_loss")):
        claims.append(stats.claim_greater(
            "z_loss_lowers_lr_sensitivity",
            f"width {w0}: LR sensitivity(qk-ln) - LR sensitivity(qk-ln + z-loss) > 0",
            _ci(sens[("qk_ln", w0)] - sens[("qk_ln+z_loss", w0)]), unit="training seeds"))
    comb = [w for w in widths if ("qk_ln+z_loss", w) in tab]
    if comb:
        dec = np.array([[flat_decades(tab[("qk_ln+z_loss", w)]["lr"], row, cfg.band)
                         for row in tab[("qk_ln+z_loss", w)]["val_loss"]] for w in comb])
        worst = dec.min(axis=0)  # per seed: the narrowest flat range over widths
        est = _ci(worst)
        claims.append(stats.claim(
            "combined_flat_over_decades",
            f"qk-ln + z-loss: final loss within {cfg.band:g} nats of its best over >= "
            f"{cfg.flat_decades:g} decades of lr at every width (value: decades, worst width)",
            est, holds=est[1] >= cfg.flat_decades, unit="training seeds"))
    md += ["", "## Notes", "",
           "Each program (width x structural switches) is one compiled `lm.sweep` program "
           "that trains all of its lr x z-loss x warmup x eps x seed cells under one vmap. "
           "Extra interventions run at one width on top of qk-layernorm + z-loss. A claim "
           "holds when its 95% CI lies above its threshold."]
    return Report(claims, "\n".join(md))


def _plot_loss_vs_lr(path, tab, widths):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.8), dpi=110,
                             sharey=True, squeeze=False)
    for ax, w in zip(axes[0], widths, strict=True):
        for iv in INTERVENTIONS:
            if (iv, w) not in tab:
                continue
            t = tab[(iv, w)]
            loss = np.where(np.isfinite(t["val_loss"]), t["val_loss"], np.nan)
            ax.plot(t["lr"], np.nanmean(loss, axis=0), marker="o", label=iv,
                    linestyle="-" if iv in MAIN else "--")
        ax.set_xscale("log")
        ax.set_title(f"width {w}")
        ax.set_xlabel("learning rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final validation loss")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_attn_curves(path, tab, width, lr, steps):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for iv in ("baseline", "qk_ln"):
        t = tab[(iv, width)]
        for k, s in enumerate(t["seed"]):
            y = t["curve_attn_logit_max"][(s, lr)]
            x = np.linspace(steps / len(y), steps, len(y))
            ax.plot(x, y, color="C0" if iv == "baseline" else "C1", alpha=0.7,
                    label=iv if k == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("max attention logit")
    ax.set_title(f"width {width}, lr {lr:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- presets
PRESETS = {
    "smoke": InstabilityConfig(
        num_seeds=2, widths=(16, 32), lrs=(1e-3, 1e-1, 1.0), n_layers=1, seq_len=16,
        steps=20, batch_size=4, warmup_steps=2, warmup_long=10, extra_width=16,
        mup_base_width=16, train_bytes=100_000, val_windows=8, chunk=10,
    ),
    "default": InstabilityConfig(),
    "paper": InstabilityConfig(
        num_seeds=5, widths=(64, 128, 256, 512), head_dim=32, n_layers=4, seq_len=256,
        lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0), steps=5000,
        batch_size=64, warmup_steps=500, warmup_long=2500, extra_width=128,
        mup_base_width=64, train_bytes=20_000_000, val_windows=512, chunk=500,
    ),
}

RECIPE = Recipe(
    name="instability-proxies",
    description="LR x width sweeps: attention-logit growth, log Z drift and their fixes",
    config_cls=InstabilityConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
