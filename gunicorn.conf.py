"""gunicorn settings for ops who run ``gunicorn -c gunicorn.conf.py`` with ``STS_CONFIG=path/to/sts.toml``.

The real settings ship inside the package (``sts/gunicorn_conf.py``) so that ``sts serve`` works from a wheel.
"""

from sts.gunicorn_conf import *  # noqa: F403
