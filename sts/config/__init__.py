"""Configuration: one TOML file plus ``STS_*`` environment overrides, loaded into frozen dataclasses."""

from sts.config.loader import DEFAULT_CONFIG_PATH, config_path_from_env, foreign_environment, load_settings
from sts.config.settings import Settings

__all__ = ["DEFAULT_CONFIG_PATH", "Settings", "config_path_from_env", "foreign_environment", "load_settings"]
