"""Errors that cckit raises for unusable input; each message names the file or key and why."""


class DataError(ValueError):
    """A video, frame folder or manifest cannot be used. The message names the file and the reason."""


class ConfigError(ValueError):
    """A configuration key, value or combination is invalid. The message names the key."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unwritable run directory); the message says where."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived: a checkpoint of the last finished step was saved, then training stopped."""
