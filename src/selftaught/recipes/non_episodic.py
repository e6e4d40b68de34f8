"""Non-episodic RL: environment shaping and dynamism (Co-Reyes et al., 2020; rl.md §7).

    selftaught run non-episodic --preset default
    # -> report.md: validation success rate, hitting time and state-visitation entropy
    #    per condition with 95% CIs over seeds; success curves; the claims table

Algorithm box:
    world: `rl.gridworld` tool task (gather wood and stone, `use` to combine: reward 1),
           egocentric 5x5 view, resources regrow / drift with probability p
    for each condition (one compiled program; the world's knobs are traced values):
        episodic            static world (p = 0), reset on success or after T steps
        non-episodic        static world, one life, never reset
        dynamic p           non-episodic, resources regrow and drift with probability p
        replaced (unshaped) non-episodic, no drift, a consumed resource is replaced at once
                            at a random cell (shaping needs resources to come back)
        env-shaped S        as `replaced`, but resources appear near the agent and the
                            spawn radius grows to the whole room over S lifetime steps
        reward-shaped b     as `replaced`, plus +b reward per needed pick-up
      train Double DQN (`rl.dqn`, a single life per seed, all seeds under one vmap)
      every chunk: greedy (eps 0.05) validation on held-out static episodic worlds:
        success rate and hitting time; lifetime state-visitation entropy
    score = mean validation success over the last `final_points` evaluations
Claims (95% bootstrap CIs over seeds):
    non-episodic sparse reward is much harder: success(episodic) - success(non-ep) > 0
    dynamism alone helps non-episodic learning: success(dynamic p) - success(static) > 0
    environment shaping matches or beats reward shaping: mean over their parameters of
        success(env-shaped) - success(reward-shaped) > -0.1 (a non-inferiority margin)
    environment shaping is more robust to its parameter: spread (max - min over the
        parameter values of mean success) of reward shaping minus that of env shaping > 0

Measured (default preset: tool task, 6x6 room, 2 wood + 2 stone, 40k lifetime steps,
5 seeds, 10 conditions; 507 CPU-seconds, peak RSS 0.99 GiB; 23 min 38 s wall on the shared
2-core machine at load average 29-45, where the run got 35% of one core, so about 5-9 min
on an idle 2-core CPU), 4 of 5 claims hold. Validation success: episodic 0.834
[0.808, 0.855], non-episodic static 0.052 [0.021, 0.095] (its static world is used up
after 2 tools), dynamic p=0.01 0.581 [0.539, 0.618], p=0.05 0.791 [0.752, 0.821];
episodic - non-episodic +0.78 [0.73, 0.82]; dynamic - static +0.53 [0.47, 0.58] (p=0.01)
and +0.74 [0.68, 0.79] (p=0.05). Shaping (worlds that replace consumed resources at once):
unshaped 0.824, env-shaped 0.820 / 0.823 (S = 5k / 20k), reward-shaped 0.849 / 0.825
(b = 0.1 / 0.5): env - reward shaping -0.016 [-0.043, 0.008] (non-inferior within 0.1:
holds), but "more robust to its parameter" does not hold (spread difference +0.021
[-0.033, 0.083]): in this small room with resources replaced at once no shaping is
needed, so neither kind of shaping has anything to be robust about.
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
from selftaught.core.rundir import RunDir, Timer
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
    dynamism: tuple[float, ...] = (0.01, 0.05)
    """p of the dynamic conditions (regrowth and drift probability per step)"""
    env_shaping: tuple[float, ...] = (5_000.0, 20_000.0)
    """shaping_steps of the environment-shaped conditions (spawn-radius growth horizon)"""
    reward_shaping: tuple[float, ...] = (0.1, 0.5)
    """reward bonus per needed pick-up of the reward-shaped conditions"""
    validation_tasks: int = 64
    """held-out validation worlds per evaluation"""
    final_points: int = 3
    """a run's score is its mean validation success over the last this many evaluations"""
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
        check_at_least_one(self, "num_seeds", "validation_tasks", "total_steps", "num_evals",
                           "batch_size", "buffer_size", "train_every", "target_update_every")
        self.world.validate()
        for p in self.dynamism:
            gw.check_params(p=p)
        for s in self.env_shaping:
            check(s > 0, f"env_shaping horizons must be positive, got {s}")
        for b in self.reward_shaping:
            check(b > 0, f"reward_shaping bonuses must be positive, got {b}")
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
    knob: float  # p, shaping horizon or bonus (0 for the first two)
    p: float = 0.0
    episodic: bool = False
    shaping_steps: float = 0.0
    reward_bonus: float = 0.0
    p_regrow: float = 0.0

    def params(self) -> gw.WorldParams:
        return gw.world_params(p=self.p, p_prey=0.5, episodic=self.episodic,
                               shaping_steps=self.shaping_steps, reward_bonus=self.reward_bonus,
                               p_regrow=self.p_regrow)


def conditions(cfg: NonEpisodicConfig) -> list[Condition]:
    out = [Condition("episodic", "episodic", 0.0, episodic=True),
           Condition("non-episodic", "static", 0.0)]
    out += [Condition(f"dynamic p={p:g}", "dynamic", p, p=p, p_regrow=p) for p in cfg.dynamism]
    # shaping needs resources to come back: these worlds replace a consumed resource at
    # once (p_regrow = 1, no drift); the shaping is where (env) or what it pays (reward)
    out += [Condition("replaced (unshaped)", "unshaped", 0.0, p_regrow=1.0)]
    out += [Condition(f"env-shaped S={s:g}", "env-shaped", s, shaping_steps=s, p_regrow=1.0)
            for s in cfg.env_shaping]
    out += [Condition(f"reward-shaped b={b:g}", "reward-shaped", b, reward_bonus=b,
                      p_regrow=1.0) for b in cfg.reward_shaping]
    return out


def _agent(cfg: NonEpisodicConfig, params: gw.WorldParams):
    world = cfg.world

    def eval_fn(policy, key):
        out = gw.validate(world, policy, key, cfg.validation_tasks)
        success = out["success"].astype(jnp.float32).mean()
        return {"eval_return": success, "success": success,
                "hitting_time": out["hitting_time"].astype(jnp.float32).mean()}

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


def phases(cfg: NonEpisodicConfig, seeds: list[int]) -> list[str]:
    """The phases of a complete run, in order (one per condition, all seeds at once)."""
    return [c.name for c in conditions(cfg)]


# ----------------------------------------------------------------------------- run
def run(cfg: NonEpisodicConfig, run_dir: RunDir, seeds: list[int]) -> None:
    todo = [c for c in conditions(cfg) if not run_dir.phase_done(c.name)]
    init, chunk = _compiled(cfg)
    steps = curve_steps(_dqn(cfg))
    with progress.bar("non-episodic conditions", total=len(todo) * cfg.num_evals) as bar:
        for cond in todo:
            timer = Timer()
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
                run_dir.log(
                    "curve", phase=cond.name, condition=cond.name, group=cond.group,
                    knob=cond.knob, seed=s, steps=steps, success=curves["success"][i],
                    hitting_time=curves["hitting_time"][i],
                    lifetime_successes=curves["lifetime_successes"][i],
                    visitation_entropy=curves["visitation_entropy"][i],
                    td_loss=curves["loss"][i], q=curves["q"][i],
                )
            run_dir.mark_phase_done(cond.name, timer(), group=cond.group)


# ----------------------------------------------------------------------------- report
def _load(run_dir: RunDir, seeds: list[int]) -> dict[str, dict]:
    by: dict[str, dict[int, dict]] = {}
    for e in run_dir.events("curve"):
        by.setdefault(e["condition"], {})[e["seed"]] = e
    out = {}
    for name, d in by.items():
        runs = [d[s] for s in seeds if s in d]
        out[name] = {k: np.array([r[k] for r in runs], np.float64)
                     for k in ("success", "hitting_time", "lifetime_successes",
                               "visitation_entropy")}
        out[name]["steps"] = np.array(runs[0]["steps"])
        out[name]["group"] = runs[0]["group"]
        out[name]["knob"] = runs[0]["knob"]
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


def report(cfg: NonEpisodicConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    data = _load(run_dir, seeds)
    conds = [c for c in conditions(cfg) if c.name in data]
    k = cfg.final_points
    final = {c.name: data[c.name]["success"][:, -k:].mean(1) for c in conds}
    md = ["## Validation success, hitting time, visitation entropy", "",
          f"{cfg.world.task} task, {cfg.world.size}x{cfg.world.size} room, view "
          f"{2 * cfg.world.view + 1}x{2 * cfg.world.view + 1}, {cfg.total_steps} lifetime steps "
          f"per seed, {len(seeds)} seeds. Validation: {cfg.validation_tasks} held-out static "
          f"worlds, success within {cfg.world.episode_steps} steps (eps 0.05 greedy); "
          f"score = mean over the last {k} evaluations. Hitting time = steps to the first "
          f"success ({cfg.world.episode_steps} when none). Visitation entropy = entropy "
          "(nats) of the agent's lifetime cell-visit distribution (max "
          f"{np.log(cfg.world.size ** 2):.2f}). Transition entropy = the entropy of the "
          "resources' autonomous drift per step (`gridworld.transition_entropy`; regrowth "
          "of consumed resources is not counted). "
          "Mean [95% bootstrap CI] over seeds.", "",
          "| condition | transition entropy | validation success | hitting time | "
          "visitation entropy | lifetime successes |", "|---|---|---|---|---|---|"]

    def cell(x):
        m, lo, hi = stats.bootstrap_ci(x, "mean")
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    for c in conds:
        d = data[c.name]
        h = gw.transition_entropy(cfg.world, c.p, 0.5)
        md.append(f"| {c.name} | {h:.3f} | {cell(final[c.name])} | "
                  f"{cell(d['hitting_time'][:, -k:].mean(1))} | "
                  f"{cell(d['visitation_entropy'][:, -1])} | "
                  f"{cell(d['lifetime_successes'][:, -1])} |")
    if conds:
        stats.plot_bars(run_dir.plots / "success.png",
                        {c.name: stats.bootstrap_ci(final[c.name], "mean") for c in conds},
                        ylabel="validation success", title="final validation success")
        md += ["", "![final validation success](plots/success.png)"]
        groups = [("episodic vs non-episodic", ("episodic", "static")),
                  ("static vs dynamic", ("static", "dynamic")),
                  ("shaping", ("unshaped", "env-shaped", "reward-shaped"))]
        for title, gs in groups:
            cs = [c for c in conds if c.group in gs]
            if not cs:
                continue
            slug = title.replace(" ", "_")
            stats.plot_curves(run_dir.plots / f"curves_{slug}.png", data[cs[0].name]["steps"],
                              {c.name: data[c.name]["success"] for c in cs},
                              xlabel="lifetime steps", ylabel="validation success", title=title)
            md += ["", f"![{title}](plots/curves_{slug}.png)"]

    claims: list[Claim] = []
    by_group: dict[str, list[Condition]] = {}
    for c in conds:
        by_group.setdefault(c.group, []).append(c)
    static = final.get("non-episodic")
    if static is not None and "episodic" in final:
        claims.append(stats.claim_greater(
            "episodic_gt_non_episodic",
            "success(episodic) - success(non-episodic, static) > 0",
            _diff_ci(final["episodic"], static), unit="training seeds"))
    if static is not None:
        for c in by_group.get("dynamic", []):
            claims.append(stats.claim_greater(
                f"dynamic_p{c.knob:g}_gt_static",
                f"success(non-episodic, p={c.knob:g}) - success(non-episodic, static) > 0",
                _diff_ci(final[c.name], static), unit="training seeds"))
    env_s, rew_s = by_group.get("env-shaped", []), by_group.get("reward-shaped", [])
    if env_s and rew_s:
        a = np.mean([final[c.name] for c in env_s], axis=0)
        b = np.mean([final[c.name] for c in rew_s], axis=0)
        claims.append(stats.claim_greater(
            "env_shaping_matches_reward_shaping",
            "success(env-shaped) - success(reward-shaped) > -0.1, averaged over their "
            "parameter values (non-inferiority margin 0.1)", _diff_ci(a, b), -0.1,
            unit="training seeds"))
        if len(env_s) > 1 and len(rew_s) > 1:
            claims.append(stats.claim_greater(
                "env_shaping_more_robust",
                "spread over parameter values of mean success: reward shaping minus env "
                "shaping > 0", _spread_diff_ci([final[c.name] for c in rew_s],
                                               [final[c.name] for c in env_s]),
                unit="training seeds"))
    md += ["", "## Notes", "",
           "A claim holds when its 95% CI lies entirely above its threshold. All agents are "
           "validated on the same held-out static worlds, so conditions differ only in the "
           "life they trained in. Lifetime successes count task completions during "
           "training (reward-shaped and dynamic worlds make them easier to reach)."]
    return Report(claims, "\n".join(md))


# ----------------------------------------------------------------------------- presets
SMOKE = NonEpisodicConfig(
    num_seeds=2, world=gw.WorldSpec(task="tool", size=4, view=1, num_resources=1,
                                    episode_steps=20),
    dynamism=(0.1,), env_shaping=(500.0,), reward_shaping=(0.1, 0.5), validation_tasks=8,
    final_points=1, total_steps=1_200, num_evals=2, batch_size=16, buffer_size=1_000,
    learning_starts=100, train_every=4, target_update_every=50, hidden_width=0.5,
)
DEFAULT = NonEpisodicConfig()
"""`selftaught run non-episodic --preset default`: 507 CPU-s, 4 of 5 claims hold (see the
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
