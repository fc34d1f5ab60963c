"""Fixtures of the sample client commands' tests: a fake STS on 127.0.0.1 and sample keys for token inspection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_sts import FakeSts, fake_sts_fixture
from tests.inspect_samples import Keys, make_keys


@pytest.fixture
def fake_sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSts]:
    yield from fake_sts_fixture(monkeypatch)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()
