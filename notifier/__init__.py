"""notifier: tells researchers about new papers they care about."""

__version__ = "0.1.0"
