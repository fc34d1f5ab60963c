"""``python -m sts``: the same command-line interface as the ``sts`` command."""

from sts.cli import main

raise SystemExit(main())
