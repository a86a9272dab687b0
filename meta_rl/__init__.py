"""meta-rl: recurrent meta-reinforcement learning (RL²) on Meta-World and friends."""

__version__ = "0.1.0"
