"""Metric loggers behind one small interface (:class:`meta_rl.loggers.base.Logger`)."""
