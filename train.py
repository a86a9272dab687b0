"""Train RL² (GRU actor-critic + PPO) on a meta-RL benchmark. See README.md.

    python train.py                                  # ML10, defaults
    python train.py algo=ppo_kl model.hidden=128     # any value from the command line
    python train.py -m seed=0,1,2                    # Hydra multirun
    python train.py debug=smoke                      # one tiny iteration on real ML10
    python train.py resume=<run dir>                 # continue an interrupted run
"""

import hydra
from omegaconf import DictConfig

from meta_rl.cli import job, run_app
from meta_rl.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@job
def main(cfg: DictConfig) -> float:
    from meta_rl.experiment import train

    return train(cfg)


if __name__ == "__main__":
    run_app(main)
