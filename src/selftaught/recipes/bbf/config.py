"""bbf: the recipe config, its variants (ablations) and the compiled programs they share."""

from __future__ import annotations

import dataclasses

from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError, UnknownNameError, check
from selftaught.rl.bbf import (
    BBFConfig,
    program_config,
)
from selftaught.rl.envs import ENVS

# variant -> (label, config changes relative to the full agent)
VARIANTS: dict[str, tuple[str, dict]] = {
    "full": ("BBF (full)", {}),
    "no_resets": ("- resets", {"resets": False}),
    "no_spr": ("- SPR", {"spr": False}),
    "no_weight_decay": ("- weight decay", {"weight_decay": 0.0}),
    "no_annealing": ("- n/gamma annealing", {"anneal": False}),
    "width1": ("width 1 (vs 4)", {"width": 1.0}),
}


@dataclasses.dataclass(frozen=True)
class BBFRecipeConfig:
    """BBF and its ablations on MinAtar games, all seeds at once."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i"""
    num_seeds: int = 5
    """seeds when --seeds is not given (all trained together under vmap)"""
    envs: tuple[str, ...] = ("SpaceInvaders-MinAtar",)
    """games to train on: MinAtar games (e.g. SpaceInvaders-MinAtar) or ALE/<Game> (paper preset)"""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """which agents to train: full, no_resets, no_spr, no_weight_decay, no_annealing, width1"""
    final_points: int = 2
    """a run's score: its mean normalised greedy return over the last this many evaluations"""
    min_full_iqm: float = 0.1
    """the ablation claims are tested only when the full agent learns: the lower end of its
    IQM's 95% CI must exceed this normalised score (0 = random policy, 1 = reference)"""
    bbf: BBFConfig = BBFConfig()
    """the full agent's hyper-parameters (loop.env is set per game from --envs)"""

    def validate(self) -> None:
        check(self.num_seeds >= 1, f"num_seeds must be at least 1, got {self.num_seeds}")
        check(len(self.envs) >= 1, "name at least one environment")
        for e in self.envs:
            if e.startswith("ALE/"):
                from selftaught.rl.atari import check_game, require_ale

                check_game(e)
                require_ale()
            elif e not in ENVS:
                raise UnknownNameError("environment", e, [*ENVS, "ALE/<Atari-100k game>"])
        for v in self.variants:
            if v not in VARIANTS:
                raise UnknownNameError("BBF variant", v, list(VARIANTS))
        check("full" in self.variants, "variants must include 'full' (the reference agent)")
        check(1 <= self.final_points <= self.bbf.loop.num_evals,
              f"final_points must be in [1, bbf.loop.num_evals={self.bbf.loop.num_evals}]")
        for e in self.envs:
            for v in self.variants:
                try:
                    cfglib.validate(variant_config(self, e, v))
                except ConfigError as exc:
                    raise ConfigError(f"{v} on {e}: {exc}") from None


def variant_config(cfg: BBFRecipeConfig, env: str, variant: str) -> BBFConfig:
    return cfglib.replace(cfg.bbf, **{"loop.env": env}, **VARIANTS[variant][1])


def programs(cfg: BBFRecipeConfig, env: str) -> dict[str, tuple[BBFConfig, list[str]]]:
    """Phase name -> (compiled config, variants it trains). Variants that differ only in
    the ablation switches (bbf.KNOB_FIELDS) share one program, their switches passed as
    data; a width change needs its own program. Atari runs one phase per variant."""
    groups: dict[BBFConfig, list[str]] = {}
    for v in cfg.variants:
        c = variant_config(cfg, env, v)
        key = c if c.is_atari else dataclasses.replace(
            c, resets=False, spr=False, anneal=False, weight_decay=0.0)
        groups.setdefault(key, []).append(v)
    out = {}
    for vs in groups.values():
        prog = program_config([variant_config(cfg, env, v) for v in vs])
        out[f"{env}/{'+'.join(vs)}"] = (prog, vs)
    return out


