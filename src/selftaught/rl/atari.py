"""Real Atari (gymnasium + ale-py, ROMs ship with ale-py) with the Atari-100k protocol,
driven by a host-side loop around the jitted BBF learner.

    pip install 'selftaught[atari]'   # gymnasium + ale-py (no opencv: resizing is NumPy)
    out = train_bbf_atari(BBFConfig(loop=LoopConfig(env="ALE/Breakout", total_steps=100_000,
                                                    ...)), seed=0)
    human_normalized("ALE/Breakout", out.eval_returns)

Protocol (Dopamine / BBF): frame skip 4 with a max over the last two frames, 84x84
grayscale (area resampling), 4 stacked frames, no sticky actions
(repeat_action_probability = 0), up to 30 no-op actions at the start of every episode,
episodes capped at 108k frames; during training a lost life ends the learning episode
(stored as terminal) while the game goes on; evaluation plays full games.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import time

import jax
import numpy as np

from selftaught.core.errors import ConfigError, UnknownNameError

INSTALL_HINT = "install the atari extra: pip install 'selftaught[atari]'"

# The 26 games of Atari-100k: (random score, human score), as in Mnih et al. 2015 / the
# Dopamine and rliable tables; human-normalised score = (R - random) / (human - random).
ATARI_100K: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7), "Amidar": (5.8, 1719.5), "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3), "BankHeist": (14.2, 753.1), "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5), "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4), "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4), "Jamesbond": (29.0, 302.8), "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5), "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6), "Pong": (-20.7, 14.6), "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0), "RoadRunner": (11.5, 7845.0), "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}


def check_game(env: str) -> str:
    """'ALE/<Game>' -> Game; a game outside Atari-100k (no reference scores) is an error."""
    game = env.removeprefix("ALE/")
    if game not in ATARI_100K:
        raise UnknownNameError("Atari-100k game", env, [f"ALE/{g}" for g in ATARI_100K])
    return game


def require_ale() -> None:
    """ConfigError (one line, exit 2 at the CLI) when gymnasium or ale-py is missing."""
    for mod in ("ale_py", "gymnasium"):
        if importlib.util.find_spec(mod) is None:
            raise ConfigError(f"Atari environments need {mod}: {INSTALL_HINT}")


def human_normalized(env: str, returns):
    lo, hi = ATARI_100K[check_game(env)]
    return (np.asarray(returns, np.float64) - lo) / (hi - lo)


@functools.lru_cache(maxsize=8)
def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] matrix averaging the input interval covered by each output pixel."""
    m = np.zeros((n_out, n_in), np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return m / m.sum(axis=1, keepdims=True)


def resize(frame_HxW: np.ndarray, size: int = 84) -> np.ndarray:
    ry = _area_matrix(size, frame_HxW.shape[0])
    rx = _area_matrix(size, frame_HxW.shape[1])
    return np.clip(ry @ frame_HxW.astype(np.float32) @ rx.T + 0.5, 0, 255).astype(np.uint8)


class AtariEnv:
    """One ALE game with the Atari-100k preprocessing. obs: uint8 [84, 84, 4]."""

    def __init__(self, game: str, seed: int, training: bool = True, frame_skip: int = 4,
                 noop_max: int = 30, stack: int = 4, max_frames: int = 108_000):
        require_ale()
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
        game = game.removeprefix("ALE/")
        try:
            self.env = gym.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
                                repeat_action_probability=0.0, full_action_space=False,
                                max_num_frames_per_episode=max_frames)
        except gym.error.Error as exc:
            raise ConfigError(f"unknown Atari game {game!r}: {exc}") from None
        self.ale = self.env.unwrapped.ale
        self.training, self.frame_skip, self.noop_max = training, frame_skip, noop_max
        self.num_actions = int(self.env.action_space.n)
        self.obs_shape = (84, 84, stack)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.frames: list[np.ndarray] = []
        self.lives = 0

    def _obs(self) -> np.ndarray:
        return np.stack(self.frames, axis=-1)

    def reset(self) -> np.ndarray:
        frame, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        for _ in range(int(self.rng.integers(1, self.noop_max + 1))):  # no-op starts
            frame, _, term, trunc, _ = self.env.step(0)
            if term or trunc:
                frame, _ = self.env.reset()
        self.lives = self.ale.lives()
        self.frames = [resize(frame)] * self.obs_shape[-1]
        return self._obs()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        """-> (obs, reward, terminated_for_learning, game_over, truncated)."""
        total, last2 = 0.0, []
        term = trunc = False
        for _ in range(self.frame_skip):
            frame, r, term, trunc, _ = self.env.step(int(action))
            total += float(r)
            last2 = [*last2[-1:], frame]
            if term or trunc:
                break
        pooled = np.maximum(last2[0], last2[-1])
        self.frames = [*self.frames[1:], resize(pooled)]
        lives = self.ale.lives()
        life_lost = lives < self.lives
        self.lives = lives
        learn_terminal = bool(term or (self.training and life_lost))
        return self._obs(), total, learn_terminal, bool(term), bool(trunc)


@dataclasses.dataclass
class AtariResult:
    train_returns: list[float]
    eval_returns: list[float]
    env_steps: int
    seconds: float
    losses: list[float]
    """TD loss (C51 cross-entropy) of the learner, sampled every `log_every` steps"""


def train_bbf_atari(config, seed: int = 0, steps: int | None = None,
                    eval_episodes: int | None = None, eval_max_steps: int | None = None,
                    log_every: int = 1000, on_step=None) -> AtariResult:
    """Train BBF for `steps` (default config.loop.total_steps) agent steps on config.loop.env
    ('ALE/<Game>') with a host loop, then evaluate `eval_episodes` (default
    config.loop.eval_episodes) full games, greedy with epsilon config.loop.eval_epsilon, each
    capped at `eval_max_steps` agent steps (default config.loop.max_episode_steps or 27k =
    108k frames).
    `on_step(t)` is called after every agent step (e.g. a progress bar)."""
    from selftaught.core import config as cfglib
    from selftaught.rl.bbf import make_agent

    cfglib.validate(config)
    lc = config.loop
    if not lc.env.startswith("ALE/"):
        raise ConfigError(f"train_bbf_atari needs loop.env='ALE/<Game>', got {lc.env!r}")
    steps = lc.total_steps if steps is None else steps
    eval_episodes = lc.eval_episodes if eval_episodes is None else eval_episodes
    eval_max_steps = eval_max_steps or lc.max_episode_steps or 27_000
    start = time.perf_counter()
    env = AtariEnv(lc.env, seed, training=True)
    agent = make_agent(config, env=env, obs_scale=1.0 / 255.0)
    carry = agent.init_host(jax.random.PRNGKey(seed))
    # the carry (replay buffer included) is updated in place: donate it to each call
    policy = jax.jit(agent.policy)
    observe = jax.jit(agent.observe, donate_argnums=0)
    reset = jax.jit(agent.reset, donate_argnums=0)
    key = jax.random.PRNGKey(seed + 1)
    obs, ret, train_returns, losses = env.reset(), 0.0, [], []
    for t in range(steps):
        key, k = jax.random.split(key)
        a = int(policy(carry, obs, k))
        nxt, r, learn_term, game_over, trunc = env.step(a)
        done = learn_term or trunc
        item = {"obs": obs, "action": np.int32(a), "reward": np.float32(np.sign(r)),
                "terminated": np.float32(learn_term), "done": np.float32(done),
                "next_obs": nxt}
        carry, m = observe(carry, item)
        if (t + 1) % log_every == 0 or t + 1 == steps:
            losses.append(float(m["loss"]))
        if on_step is not None:
            on_step(t + 1)
        ret += r
        obs = nxt
        if game_over or trunc:
            train_returns.append(ret)
            obs, ret = env.reset(), 0.0
        steps_done = t + 1
        if (config.resets and steps_done % config.reset_every == 0
                and steps_done < config.reset_until):
            carry = reset(carry)
    eval_env = AtariEnv(lc.env, seed + 10_000, training=False)
    eval_returns = []
    for _ in range(eval_episodes):
        obs, total = eval_env.reset(), 0.0
        for _ in range(eval_max_steps):
            key, k = jax.random.split(key)
            a = int(policy(carry, obs, k, lc.eval_epsilon))
            obs, r, _, over, trunc = eval_env.step(a)
            total += r
            if over or trunc:
                break
        eval_returns.append(total)
    return AtariResult(train_returns, eval_returns, steps, time.perf_counter() - start, losses)
