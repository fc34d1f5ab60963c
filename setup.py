"""Package discovery that cannot forget a subpackage; all other metadata is in pyproject.toml.

Every package below ``sts/`` is found, and the top-level ``policies/`` folder (the WS-SecurityPolicy files, kept
at the top of the repository where operators look for them) is installed as ``sts.policies``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sts", "sts.*"]), "sts.policies"],
    package_dir={"sts.policies": "policies"},
)
