"""Train RL² (GRU actor-critic + PPO) on a meta-RL benchmark. See README.md.

    python train.py                                  # ML10, defaults
    python train.py algo=ppo_kl model.hidden=128     # any value from the command line
    python train.py -m seed=0,1,2                    # Hydra multirun
    python train.py debug=smoke                      # one tiny iteration on real ML10
"""

import sys

import hydra
from omegaconf import DictConfig

from meta_rl.config import ConfigError, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from meta_rl.experiment import train

    try:
        return train(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
