"""Meta-test a trained RL² agent: few-shot adaptation on held-out tasks. See README.md.

    python evaluate.py run=outputs/rl2/ml10/<time>                  # latest checkpoint, test split, all goals
    python evaluate.py run=<run dir> checkpoint=best eval.num_goals=10 eval.adaptation_episodes=5
    python evaluate.py run=<dir>/checkpoints/latest.pt eval.split=train device=cuda
"""

import hydra
from omegaconf import DictConfig

from meta_rl.cli import job, run_app
from meta_rl.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@job
def main(cfg: DictConfig) -> float:
    from meta_rl.experiment import evaluate

    return evaluate(cfg)["overall"]["success"]


if __name__ == "__main__":
    run_app(main)
