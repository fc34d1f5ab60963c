"""Package discovery that cannot forget a subpackage; all other metadata is in pyproject.toml.

Every package below ``sts/`` is found; the migration folders (SQL files only, no ``__init__.py``) are listed as
packages of their own, as setuptools wants data directories to be; and the top-level ``policies/`` folder (the
WS-SecurityPolicy files, kept at the top of the repository where operators look for them) is installed as
``sts.policies``.
"""

from setuptools import find_packages, setup

MIGRATIONS = ["sts.stores.migrations.sqlite", "sts.stores.migrations.postgresql"]

setup(
    packages=[*find_packages(include=["sts", "sts.*"]), *MIGRATIONS, "sts.policies"],
    package_dir={"sts.policies": "policies"},
)
