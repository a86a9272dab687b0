"""Slow learners: GAE and PPO (clip and adaptive-KL penalty)."""
