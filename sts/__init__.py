"""sts: a WS-Trust Security Token Service issuing signed, encrypted SAML assertions."""

from pathlib import Path

__version__ = "0.2.0"  # the distribution version in pyproject.toml (tests/unit/test_package.py)


def gunicorn_conf_path() -> Path:
    """The gunicorn settings file shipped inside the package."""
    return Path(__file__).with_name("gunicorn_conf.py")
