"""The configuration file (SPEC §5): TOML in, validated and immutable `Settings` out.

`schema` is the generic reader (typed keys, unknown keys, errors naming file and key), `values` the
kinds of values ttrd's file holds, `settings` the dataclasses and the builder that fills them.
"""

from ttrd.config.settings import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_IMAP_FOLDERS,
    DEFAULT_POLL_SECONDS,
    UNKNOWN_AGENT,
    ImapAccount,
    MetricsSettings,
    Settings,
    SmtpSettings,
    StorageSettings,
    TlsMode,
    config_path,
    load_settings,
    settings_from_text,
)
from ttrd.config.values import Endpoint

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_IMAP_FOLDERS",
    "DEFAULT_POLL_SECONDS",
    "UNKNOWN_AGENT",
    "Endpoint",
    "ImapAccount",
    "MetricsSettings",
    "Settings",
    "SmtpSettings",
    "StorageSettings",
    "TlsMode",
    "config_path",
    "load_settings",
    "settings_from_text",
]
