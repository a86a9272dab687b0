"""Policy/value networks."""

from meta_rl.models.gru import GRUActorCritic

__all__ = ["GRUActorCritic"]
