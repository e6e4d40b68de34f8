"""Non-episodic RL: dynamism and environment shaping (Co-Reyes et al., 2020; rl.md §7).

    selftaught run non-episodic --preset default
    # -> report.md: test success rate, hitting time, transition entropy (analytic and
    #    measured), visitation entropy per condition with 95% CIs over seeds; success
    #    curves; the claims table

Algorithm box:
    world: `rl.gridworld` tool task (gather wood and stone, `use` to combine: reward 1),
           egocentric 5x5 view. EVERY world regrows a consumed resource with probability
           `regrowth` per step at a random free cell, so a reset-free life never runs out
    for each condition (one compiled program; the world's knobs are traced values):
        episodic            static world (drift p = 0), reset on success or after T steps
        non-episodic p=0    static world, one life, never reset: the baseline non-episodic
                            world, the regrowth-only member of the dynamism family and the
                            unshaped member of the shaping family
        dynamic p           as p=0, plus each resource drifts one cell with probability p:
                            the only difference is the transition entropy
        env-shaped S        as p=0, but resources appear near the agent and the spawn
                            radius grows to the whole room over S lifetime steps
        reward-shaped b     as p=0, plus +b reward per needed pick-up
      train Double DQN (`rl.dqn`, a single life per seed, all seeds under one vmap)
      every chunk: greedy (eps 0.05) evaluation on two disjoint sets of held-out static
        episodic worlds: validation worlds (`gridworld.VALIDATION_SEED`: choices and the
        saturation check) and test worlds (`gridworld.TEST_SEED`: every claim)
      transition entropy of each world: analytic drift entropy and the drift entropy
        measured over a random-policy life; regrowths per 1000 steps beside it
    score = mean test success over the last `final_points` evaluations
Claims (unit = training seeds, n = num_seeds; 95% bootstrap CIs over seeds):
    non-episodic sparse reward is harder even when resources regrow:
        success(episodic) - success(non-episodic p=0) > 0
    dynamism alone helps at fixed regrowth: success(dynamic p) - success(p=0) > 0, per p
    environment shaping matches or beats reward shaping: mean over their parameters of
        success(env-shaped) - success(reward-shaped) > -shaping_margin (non-inferiority)
    environment shaping is more robust to its parameter: spread (max - min over the
        parameter values of mean success) of reward shaping minus that of env shaping > 0
    The two shaping claims are tested only where the unshaped (p=0) world does not
    saturate: if its mean validation success is within `shaping_margin` of the episodic
    agent's there is no gap for shaping to close; the claim is then "not tested:
    saturated" with both numbers (`Claim.gated`) and does not hold.
Selection: nothing is tuned on the test worlds. `regrowth` = 0.01 was fixed before the
first run of this design, from the previous design's results on the validation worlds
(there p = regrowth = 0.01 gave success 0.58 against episodic 0.83, so the unshaped world
is not saturated and shaping has room to act); the previous design reported those
validation worlds, this one reports the disjoint test worlds. The other hyper-parameters
are the previous design's, unchanged.

Measured (default preset: tool task, 6x6 room, 2 wood + 2 stone, regrowth 0.01, 40k
lifetime steps, 5 seeds, 8 conditions; `/usr/bin/time -v selftaught run non-episodic
--preset default`: 236 CPU-s (232 user + 4.5 sys), peak RSS 1.03 GiB, 8 min 38 s wall,
measured under load - load average 8-9 on the shared 2-core machine, the run got 45% of
one core; idle, 2026-12-06: 2 min 46 s wall, 230 CPU-s, 1.07 GiB, the same claims), 2 of 5
claims hold. Test success
(64 held-out test worlds): episodic 0.830 [0.811, 0.851], non-episodic p=0 (static,
regrowing) 0.559 [0.527, 0.594], dynamic p=0.01 0.505 [0.450, 0.543], p=0.05 0.530
[0.496, 0.563]. Drift entropy (analytic / measured, nats per step): 0 / 0, 0.279 / 0.220,
1.071 / 0.845; regrowths per 1000 random-policy steps 15.8, 15.2, 13.2.
- episodic - non-episodic (regrowing) +0.271 [0.230, 0.309]: holds. Resources no longer
  run out (the old static world scored 0.05); the gap that remains comes with far less
  practice: 376 lifetime task completions against the episodic agent's 1926 (resets hand
  it a full world every episode).
- dynamism alone does NOT help at fixed regrowth: p=0.01 - p=0 -0.054 [-0.118, -0.001]
  (drift hurts a little), p=0.05 - p=0 -0.029 [-0.077, +0.020]. Drift does make the
  training life easier (lifetime completions 403 and 455 against 376), but that practice
  does not carry over to the static test worlds; the old design's "dynamism helps" (+0.53 / +0.74)
  was the regrowth that came with the drift.
- shaping (unshaped p=0 world not saturated: validation success 0.602 against episodic
  0.857, a gap of 0.26 > margin 0.1, so the comparison is tested): env-shaped 0.541 /
  0.542 (S = 5k / 20k), reward-shaped 0.527 / 0.601 (b = 0.1 / 0.5); env - reward
  shaping -0.023 [-0.057, +0.014]: non-inferior within 0.1, holds - but no shaped world
  beats the unshaped 0.559 by more than 0.042 (reward b=0.5), so this reads "neither
  helps much" rather than "environment shaping works". "env shaping more robust" does
  not hold: spread difference +0.073 [-0.020, +0.098].
Sensitivity to the regrowth rate (run after the default, chose nothing; same command with
`--regrowth R`, 220 / 219 CPU-s, both under the same load). Test success, differences
with 95% CIs over 5 seeds:
    R      episodic  p=0    p=0.01 - p=0            p=0.05 - p=0            env - reward
    0.002  0.821     0.348  +0.009 [-0.059, 0.079]  +0.018 [-0.062, 0.089]  -0.060 [-0.094, -0.016]
    0.01   0.830     0.559  -0.054 [-0.118, -0.001] -0.029 [-0.077, 0.020]  -0.023 [-0.057, 0.014]
    0.05   0.831     0.735  +0.034 [-0.008, 0.078]  -0.009 [-0.057, 0.035]  saturated (see below)
  episodic - non-episodic holds at every R (+0.473 [0.425, 0.521] at 0.002, +0.096 [0.056,
  0.135] at 0.05) and shrinks as regrowth grows; drift at fixed regrowth helps at no R. At
  R = 0.05 the shaping gate fires: the unshaped validation success 0.765 is within 0.1 of
  episodic 0.855, so both shaping claims are "not tested: saturated" and do not hold
  (1 of 5 hold there); at R = 0.002 env vs reward shaping is non-inferior only just (CI
  low -0.094 against the margin -0.1), 2 of 5 hold.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import progress
from selftaught.core.errors import check, check_at_least_one, check_finite
from selftaught.core.recipe import Claim, Recipe, Report
from selftaught.core.rundir import RunDir
from selftaught.core.seeding import keys
from selftaught.rl import gridworld as gw
from selftaught.rl.dqn import DQNConfig, curve_steps, make_agent


@dataclasses.dataclass(frozen=True)
class NonEpisodicConfig:
    """Double DQN in reset-free gridworlds: episodic vs not, static vs dynamic, shaping."""

    seed: int = 0
    """first seed (seeds are seed, seed + 1, ...)"""
    num_seeds: int = 5
    """seeds per condition, trained together under vmap"""
    world: gw.WorldSpec = gw.WorldSpec(task="tool", size=6, view=2, num_resources=2,
                                       episode_steps=50)
    """the gridworld (task, room size, view radius, resources, episode / validation length)"""
    regrowth: float = 0.01
    """probability per step that a consumed resource regrows (at a random free cell), the
    same in every condition, so a reset-free life never runs out of resources"""
    dynamism: tuple[float, ...] = (0.01, 0.05)
    """drift probabilities p of the dynamic conditions (each resource moves one cell with
    probability p per step); p = 0, the regrowth-only world, is always run"""
    env_shaping: tuple[float, ...] = (5_000.0, 20_000.0)
    """shaping_steps of the environment-shaped conditions (spawn-radius growth horizon)"""
    reward_shaping: tuple[float, ...] = (0.1, 0.5)
    """reward bonus per needed pick-up of the reward-shaped conditions"""
    validation_tasks: int = 64
    """held-out validation worlds per evaluation (curves, the saturation check)"""
    test_tasks: int = 64
    """held-out test worlds per evaluation, disjoint from the validation worlds (claims)"""
    shaping_margin: float = 0.1
    """non-inferiority margin of env vs reward shaping; the comparison is saturated (not
    tested) when the unshaped world's validation success is within it of episodic's"""
    entropy_steps: int = 4_000
    """random-policy steps per condition over which transition entropy is measured"""
    final_points: int = 3
    """a run's score is its mean success over the last this many evaluations"""
    total_steps: int = 40_000
    """lifetime steps per seed (one life; the episodic agent spends them in episodes)"""
    num_evals: int = 8
    """evaluation points (learning-curve length)"""
    lr: float = 5e-4
    """Adam learning rate of the Q network"""
    gamma: float = 0.95
    """discount (a never-ending life needs gamma < 1)"""
    batch_size: int = 64
    """replayed transitions per gradient step"""
    buffer_size: int = 20_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 1_000
    """random-action lifetime steps before learning"""
    train_every: int = 4
    """env steps between gradient steps"""
    target_update_every: int = 250
    """hard target-network update period in gradient steps"""
    eps_end: float = 0.1
    """exploration epsilon reached after eps_decay_frac of the life (decays from 1)"""
    eps_decay_frac: float = 0.3
    """fraction of the life over which epsilon decays linearly"""
    hidden_width: float = 2.0
    """MLP torso width multiplier (64 x width units, two layers)"""

    def validate(self) -> None:
        check_at_least_one(self, "num_seeds", "validation_tasks", "test_tasks", "total_steps",
                           "num_evals", "batch_size", "buffer_size", "train_every",
                           "target_update_every", "entropy_steps")
        self.world.validate()
        check(0 < self.regrowth <= 1, "regrowth is a probability per step and must be in "
              f"(0, 1] (a reset-free life must not run out of resources), got {self.regrowth}")
        for p in self.dynamism:
            gw.check_params(p=p)
            check(p > 0, "dynamism lists the drift probabilities of the dynamic conditions "
                  "(> 0; p = 0 always runs as the regrowth-only world), got 0")
        for s in self.env_shaping:
            check(s > 0, f"env_shaping horizons must be positive, got {s}")
        for b in self.reward_shaping:
            check(b > 0, f"reward_shaping bonuses must be positive, got {b}")
        check(0 < self.shaping_margin < 1, f"shaping_margin must be in (0, 1), got "
              f"{self.shaping_margin}")
        check(1 <= self.final_points <= self.num_evals,
              f"final_points must be in [1, num_evals={self.num_evals}], got {self.final_points}")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(0 <= self.gamma < 1, f"gamma must be in [0, 1) for a never-ending life, got "
              f"{self.gamma}")
        check(0 <= self.eps_end <= 1, f"eps_end must be in [0, 1], got {self.eps_end}")
        _dqn(self).validate()


def _dqn(cfg: NonEpisodicConfig) -> DQNConfig:
    """The Double DQN configuration a recipe config implies (one life = one env)."""
    return DQNConfig(
        env="CartPole-v1",  # unused: the gridworld is injected into make_agent
        loss="mse", encoder="mlp", width=cfg.hidden_width, total_steps=cfg.total_steps,
        num_envs=1, buffer_size=cfg.buffer_size, batch_size=cfg.batch_size,
        learning_starts=cfg.learning_starts, train_every=cfg.train_every, grad_steps=1,
        lr=cfg.lr, gamma=cfg.gamma, double_dqn=True,
        target_update_every=cfg.target_update_every, eps_start=1.0, eps_end=cfg.eps_end,
        eps_decay_frac=cfg.eps_decay_frac, num_evals=cfg.num_evals, eval_episodes=1,
        eval_epsilon=0.05,
    )


# ----------------------------------------------------------------------------- conditions
@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    group: str  # episodic | static | dynamic | env-shaped | reward-shaped
    knob: float  # drift p, shaping horizon or bonus (0 for episodic and static)
    regrowth: float
    p: float = 0.0
    episodic: bool = False
    shaping_steps: float = 0.0
    reward_bonus: float = 0.0

    def params(self) -> gw.WorldParams:
        return gw.world_params(p=self.p, p_prey=0.5, episodic=self.episodic,
                               shaping_steps=self.shaping_steps, reward_bonus=self.reward_bonus,
                               p_regrow=self.regrowth)


STATIC = "non-episodic p=0 (regrowth only)"
"""The baseline reset-free world: static (no drift), consumed resources regrow. It is the
p = 0 member of the dynamism family and the unshaped member of the shaping family."""


def conditions(cfg: NonEpisodicConfig) -> list[Condition]:
    """Every condition regrows consumed resources with probability `cfg.regrowth` per step:
    the families differ from the static regrowing world in one thing each (resets, drift p,
    where resources appear, what a pick-up pays)."""
    r = cfg.regrowth
    out = [Condition("episodic", "episodic", 0.0, r, episodic=True),
           Condition(STATIC, "static", 0.0, r)]
    out += [Condition(f"dynamic p={p:g}", "dynamic", p, r, p=p) for p in cfg.dynamism]
    out += [Condition(f"env-shaped S={s:g}", "env-shaped", s, r, shaping_steps=s)
            for s in cfg.env_shaping]
    out += [Condition(f"reward-shaped b={b:g}", "reward-shaped", b, r, reward_bonus=b)
            for b in cfg.reward_shaping]
    return out


def _agent(cfg: NonEpisodicConfig, params: gw.WorldParams):
    world = cfg.world

    def eval_fn(policy, key):
        k_val, k_test = jax.random.split(key)
        val = gw.validate(world, policy, k_val, cfg.validation_tasks)
        test = gw.validate(world, policy, k_test, cfg.test_tasks, seed=gw.TEST_SEED)
        success = val["success"].astype(jnp.float32).mean()
        return {"eval_return": success, "success": success,
                "hitting_time": val["hitting_time"].astype(jnp.float32).mean(),
                "test_success": test["success"].astype(jnp.float32).mean(),
                "test_hitting_time": test["hitting_time"].astype(jnp.float32).mean()}

    return make_agent(_dqn(cfg), env=gw.make_env(world, params), eval_fn=eval_fn)


@functools.lru_cache(maxsize=8)
def _compiled(cfg: NonEpisodicConfig):
    """(init(keys_S, params), chunk(carry_S)) jitted and vmapped over seeds. The world's
    knobs are arguments (traced), so every condition runs the same compiled program."""

    def init(rng, params):
        return _agent(cfg, params).init(rng)

    def chunk(carry):
        # the env's reset closure is unused after init; step reads the knobs from the state
        return _agent(cfg, gw.validation_params()).chunk(carry)

    return jax.jit(jax.vmap(init, in_axes=(0, None))), jax.jit(jax.vmap(chunk))


@functools.lru_cache(maxsize=8)
def _entropy_rollout(world: gw.WorldSpec, steps: int):
    """jit(key, params) -> the random-policy trajectory's object positions and alive flags."""

    def go(key, params):
        _, tr = gw.random_rollout(world, key, params, steps)
        return tr["obj_pos"], tr["alive"]

    return jax.jit(go)


def measure_transition_entropy(cfg: NonEpisodicConfig, cond: Condition, seed: int) -> dict:
    """The condition's dynamism, measured from a random-policy life of `entropy_steps` steps
    (reset-free, so episodic resets do not count as motion): drift entropy (nats per step,
    summed over objects: `gridworld.empirical_transition_entropy`) next to its analytic
    value, and regrowths per 1000 steps (the same regrowth probability in every condition)."""
    params = dataclasses.replace(cond, episodic=False).params()
    pos, alive = jax.device_get(_entropy_rollout(cfg.world, cfg.entropy_steps)(
        jax.random.PRNGKey(seed), params))
    regrown = int(np.sum(alive[1:] & ~alive[:-1]))
    return {"drift_entropy": gw.empirical_transition_entropy(pos, alive),
            "drift_entropy_analytic": gw.transition_entropy(cfg.world, cond.p, 0.5),
            "regrowths_per_1k": 1000.0 * regrown / cfg.entropy_steps}


def phases(cfg: NonEpisodicConfig, seeds: list[int]) -> list[str]:
    """The phases of a complete run, in order (one per condition, all seeds at once)."""
    return [c.name for c in conditions(cfg)]


# ----------------------------------------------------------------------------- run
def train_condition(log, cfg: NonEpisodicConfig, cond: Condition, seeds: list[int], bar):
    """One condition, all seeds under one vmap: learning curves (validation and test
    success) and lifetime measures per seed, and the world's measured transition entropy."""
    init, chunk = _compiled(cfg)
    steps = curve_steps(_dqn(cfg))
    carry = init(keys(seeds), cond.params())
    rows = []
    for _ in range(cfg.num_evals):
        carry, m = chunk(carry)
        st = carry.env_state  # [S, 1, ...]: one life per seed
        m = dict(jax.device_get(m))
        m["lifetime_successes"] = np.asarray(st.successes[:, 0])
        m["visitation_entropy"] = np.asarray(gw.visitation_entropy(st.visits[:, 0]))
        rows.append(m)
        bar.advance(1)
    curves = {k: np.stack([np.asarray(r[k]) for r in rows], axis=1) for k in rows[0]}
    check_finite(float(np.mean(curves["loss"][:, -1])), where=cond.name,
                 step=int(curves["env_steps"][0, -1]), lr=cfg.lr)
    for i, s in enumerate(seeds):
        log("curve", condition=cond.name, group=cond.group, knob=cond.knob, seed=s,
            steps=steps, success=curves["success"][i], hitting_time=curves["hitting_time"][i],
            test_success=curves["test_success"][i],
            test_hitting_time=curves["test_hitting_time"][i],
            lifetime_successes=curves["lifetime_successes"][i],
            visitation_entropy=curves["visitation_entropy"][i],
            td_loss=curves["loss"][i], q=curves["q"][i])
    entropy = measure_transition_entropy(cfg, cond, seeds[0])
    log("dynamism", condition=cond.name, **entropy)
    k = cfg.final_points
    log.headline(test_success=float(curves["test_success"][:, -k:].mean()),
                 drift_entropy=round(entropy["drift_entropy"], 3))


def run(cfg: NonEpisodicConfig, run_dir: RunDir, seeds: list[int]) -> None:
    todo = [c for c in conditions(cfg) if not run_dir.phase_done(c.name)]
    with progress.bar("non-episodic conditions", total=len(todo) * cfg.num_evals) as bar:
        for cond in conditions(cfg):
            run_dir.phase(cond.name, train_condition, cfg, cond, seeds, bar)


# ----------------------------------------------------------------------------- report
CURVES = ("success", "hitting_time", "test_success", "test_hitting_time", "lifetime_successes",
          "visitation_entropy")


def _load(run_dir: RunDir, seeds: list[int]) -> dict[str, dict]:
    by: dict[str, dict[int, dict]] = {}
    for e in run_dir.events("curve"):
        by.setdefault(e["condition"], {})[e["seed"]] = e
    dyn = {e["condition"]: e for e in run_dir.events("dynamism")}
    out = {}
    for name, d in by.items():
        runs = [d[s] for s in seeds if s in d]
        out[name] = {k: np.array([r[k] for r in runs], np.float64) for k in CURVES}
        out[name]["steps"] = np.array(runs[0]["steps"])
        out[name]["group"] = runs[0]["group"]
        out[name]["knob"] = runs[0]["knob"]
        out[name]["dynamism"] = dyn.get(name, {})
    return out


def _diff_ci(a, b, reps: int = 2000, seed: int = 0) -> stats.Estimate:
    """mean(a) - mean(b) of independent samples with a percentile bootstrap 95% CI, over
    n = min(len(a), len(b)) seeds."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    point = float(a.mean() - b.mean())
    n = min(len(a), len(b))
    if n < 2:
        return stats.Estimate(point, point, point, n)
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, len(a), (reps, len(a)))].mean(1)
    db = b[rng.integers(0, len(b), (reps, len(b)))].mean(1)
    lo, hi = np.quantile(da - db, [0.025, 0.975])
    return stats.Estimate(point, float(lo), float(hi), n)


def _spread_diff_ci(groups_a: list[np.ndarray], groups_b: list[np.ndarray], reps: int = 2000,
                    seed: int = 0) -> stats.Estimate:
    """spread(A) - spread(B), spread = max - min over parameter values of the mean score,
    with seeds resampled within each (parameter value) cell; n = the fewest seeds of a
    cell."""
    spread = lambda gs: max(g.mean() for g in gs) - min(g.mean() for g in gs)  # noqa: E731
    point = float(spread(groups_a) - spread(groups_b))
    n = min(len(g) for g in groups_a + groups_b)
    if n < 2:
        return stats.Estimate(point, point, point, n)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(reps):
        ra = [g[rng.integers(0, len(g), len(g))] for g in groups_a]
        rb = [g[rng.integers(0, len(g), len(g))] for g in groups_b]
        boots.append(spread(ra) - spread(rb))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return stats.Estimate(point, float(lo), float(hi), n)


def saturation(cfg: NonEpisodicConfig, val_final: dict[str, np.ndarray]) -> str:
    """Why the shaping comparison is not tested ("" when it is): the unshaped (static
    regrowing) world's mean validation success is already within `shaping_margin` of the
    episodic agent's, so there is no gap for shaping to close. Decided on the validation
    worlds; the claims are measured on the test worlds."""
    if STATIC not in val_final or "episodic" not in val_final:
        return ""
    unshaped, episodic = float(val_final[STATIC].mean()), float(val_final["episodic"].mean())
    if unshaped < episodic - cfg.shaping_margin:
        return ""
    return (f"saturated: the unshaped world's validation success {unshaped:.3f} "
            f"is within {cfg.shaping_margin:g} of episodic {episodic:.3f}")


def report(cfg: NonEpisodicConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    data = _load(run_dir, seeds)
    conds = [c for c in conditions(cfg) if c.name in data]
    k = cfg.final_points
    final = {c.name: data[c.name]["test_success"][:, -k:].mean(1) for c in conds}
    val_final = {c.name: data[c.name]["success"][:, -k:].mean(1) for c in conds}
    md = ["## Test success, hitting time, transition and visitation entropy", "",
          f"{cfg.world.task} task, {cfg.world.size}x{cfg.world.size} room, view "
          f"{2 * cfg.world.view + 1}x{2 * cfg.world.view + 1}, {cfg.total_steps} lifetime steps "
          f"per seed, {len(seeds)} seeds. Every world regrows a consumed resource with "
          f"probability {cfg.regrowth:g} per step. Evaluation: {cfg.test_tasks} held-out static "
          f"test worlds (claims) and {cfg.validation_tasks} disjoint validation worlds (the "
          f"saturation check), success within {cfg.world.episode_steps} steps (eps 0.05 "
          f"greedy); score = mean over the last {k} evaluations. Hitting time = steps to the "
          f"first success ({cfg.world.episode_steps} when none). Transition entropy = "
          "entropy (nats per step, summed over resources) of the resources' autonomous "
          "drift: analytic (`gridworld.transition_entropy`) and measured over "
          f"{cfg.entropy_steps} random-policy steps of a reset-free life in that world "
          "(`gridworld.empirical_transition_entropy`); regrowth, the same in every world, "
          "is counted separately (regrowths per 1000 steps). Visitation entropy = entropy "
          "(nats) of the agent's lifetime cell-visit distribution (max "
          f"{np.log(cfg.world.size ** 2):.2f}). Mean [95% bootstrap CI] over seeds.", ""]

    def cell(x):
        return stats.ci_cell(stats.bootstrap_ci(x, "mean"), ".3f")

    rows = []
    for c in conds:
        d = data[c.name]
        dyn = d["dynamism"]
        ent = (f"{dyn['drift_entropy_analytic']:.3f} / {dyn['drift_entropy']:.3f}" if dyn
               else "-")
        regrow = f"{dyn['regrowths_per_1k']:.1f}" if dyn else "-"
        rows.append([c.name, f"{c.p:g}", ent, regrow, cell(final[c.name]),
                     cell(val_final[c.name]), cell(d["test_hitting_time"][:, -k:].mean(1)),
                     cell(d["visitation_entropy"][:, -1]), cell(d["lifetime_successes"][:, -1])])
    md.append(stats.markdown_table(
        ["condition", "drift p", "drift entropy (analytic / measured)", "regrowths / 1k",
         "test success", "validation success", "test hitting time", "visitation entropy",
         "lifetime successes"], rows))
    if conds:
        stats.plot_bars(run_dir.plots / "success.png",
                        {c.name: stats.bootstrap_ci(final[c.name], "mean") for c in conds},
                        ylabel="test success", title="final test success")
        md += ["", "![final test success](plots/success.png)"]
        groups = [("episodic vs non-episodic", ("episodic", "static")),
                  ("static vs dynamic", ("static", "dynamic")),
                  ("shaping", ("static", "env-shaped", "reward-shaped"))]
        for title, gs in groups:
            cs = [c for c in conds if c.group in gs]
            if not cs:
                continue
            slug = title.replace(" ", "_")
            stats.plot_curves(run_dir.plots / f"curves_{slug}.png", data[cs[0].name]["steps"],
                              {c.name: data[c.name]["test_success"] for c in cs},
                              xlabel="lifetime steps", ylabel="test success", title=title)
            md += ["", f"![{title}](plots/curves_{slug}.png)"]

    unit = "training seeds"
    claims: list[Claim] = []
    by_group: dict[str, list[Condition]] = {}
    for c in conds:
        by_group.setdefault(c.group, []).append(c)
    static = final.get(STATIC)
    if static is not None and "episodic" in final:
        claims.append(stats.claim_greater(
            "episodic_gt_non_episodic",
            "success(episodic) - success(non-episodic, static world that regrows) > 0",
            _diff_ci(final["episodic"], static), unit=unit))
    if static is not None:
        for c in by_group.get("dynamic", []):
            claims.append(stats.claim_greater(
                f"dynamic_p{c.knob:g}_gt_regrowth_only",
                f"success(non-episodic, drift p={c.knob:g}) - success(non-episodic, p=0) > 0 "
                "at the same regrowth (dynamism alone)", _diff_ci(final[c.name], static),
                unit=unit))
    saturated = saturation(cfg, val_final)
    env_s, rew_s = by_group.get("env-shaped", []), by_group.get("reward-shaped", [])
    if env_s and rew_s:
        a = np.mean([final[c.name] for c in env_s], axis=0)
        b = np.mean([final[c.name] for c in rew_s], axis=0)
        statement = (f"success(env-shaped) - success(reward-shaped) > -{cfg.shaping_margin:g}"
                     ", averaged over their parameter values (non-inferiority)")
        est = _diff_ci(a, b)
        claims.append(stats.claim(
            "env_shaping_matches_reward_shaping", statement, est,
            est[1] > -cfg.shaping_margin, unit=unit).gated(not saturated, saturated))
        if len(env_s) > 1 and len(rew_s) > 1:
            statement = ("spread over parameter values of mean success: reward shaping minus "
                         "env shaping > 0")
            est = _spread_diff_ci([final[c.name] for c in rew_s],
                                  [final[c.name] for c in env_s])
            claims.append(stats.claim(
                "env_shaping_more_robust", statement, est, est[1] > 0,
                unit=unit).gated(not saturated, saturated))
    md += ["", "## Notes", "",
           "A claim holds when its 95% CI lies entirely above its threshold. All agents are "
           "evaluated on the same held-out static worlds, so conditions differ only in the "
           "life they trained in. The non-episodic baseline regrows its resources, so a "
           "reset-free life cannot run out of them; the dynamic worlds add drift (transition "
           "entropy) at the same regrowth; the shaped worlds are that baseline plus shaping. "
           "The shaping claims are not tested when the baseline already nearly matches the "
           "episodic agent on the validation worlds (saturation; the claim then says so and "
           "does not hold). Lifetime successes count task completions during training."]
    return Report(claims, "\n".join(md))


# ----------------------------------------------------------------------------- presets
SMOKE = NonEpisodicConfig(
    num_seeds=2, world=gw.WorldSpec(task="tool", size=4, view=1, num_resources=1,
                                    episode_steps=20),
    regrowth=0.05, dynamism=(0.1,), env_shaping=(500.0,), reward_shaping=(0.1, 0.5),
    validation_tasks=8, test_tasks=8, entropy_steps=500, final_points=1, total_steps=1_200,
    num_evals=2, batch_size=16, buffer_size=1_000, learning_starts=100, train_every=4,
    target_update_every=50, hidden_width=0.5,
)
DEFAULT = NonEpisodicConfig()
"""`selftaught run non-episodic --preset default`: 236 CPU-s, 2 of 5 claims hold (see the
module docstring for the measured figures)."""
PAPER = dataclasses.replace(
    DEFAULT, num_seeds=10,
    world=gw.WorldSpec(task="tool", size=10, view=2, num_resources=3, episode_steps=100),
    dynamism=(0.005, 0.01, 0.05, 0.1), env_shaping=(20_000.0, 100_000.0, 400_000.0),
    reward_shaping=(0.05, 0.1, 0.5, 1.0), total_steps=1_000_000, num_evals=20,
    buffer_size=200_000, learning_starts=10_000, target_update_every=1_000,
    validation_tasks=256,
)

RECIPE = Recipe(
    name="non-episodic",
    description="Double DQN in reset-free gridworlds: dynamism and environment shaping",
    config_cls=NonEpisodicConfig,
    presets={"smoke": SMOKE, "default": DEFAULT, "paper": PAPER},
    run=run,
    report=report,
    phases=phases,
)
