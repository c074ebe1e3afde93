"""Settings from the configuration file (split into modules in the next commit)."""

from ttrd.config.settings import *  # noqa: F403
