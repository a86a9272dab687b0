"""Errors that end a run with one line (no traceback) and a non-zero exit code."""


class MetaRLError(Exception):
    """Base class: the message is one line that says what is wrong and how to fix it."""

    exit_code = 1


class ConfigError(MetaRLError, ValueError):
    """A config value is invalid."""

    exit_code = 2


class CheckpointError(MetaRLError, RuntimeError):
    """A checkpoint is missing, corrupt, unsafe or not a meta-rl checkpoint."""

    exit_code = 2


class NumericalError(MetaRLError, FloatingPointError):
    """NaN/Inf in a loss, a gradient or the parameters."""

    exit_code = 3


class EnvError(MetaRLError, RuntimeError):
    """An environment raised or a worker died."""

    exit_code = 4


class Interrupted(MetaRLError):
    """SIGTERM/SIGINT: the run checkpointed and stopped."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
