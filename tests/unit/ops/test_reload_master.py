"""The gunicorn master's side of a reload (:mod:`sts.gunicorn_reload`), in-process: a reload refused because the
application cannot be built changes nothing in the master, its logging included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sts import gunicorn_reload
from sts.config import load_settings
from sts.logging import configure_logging
from tests.support import make_instance


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were, whatever the test did to them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _replace_line(config: Path, prefix: str, line: str) -> None:
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line if old.startswith(prefix) else old for old in lines) + "\n")


def test_a_reload_refused_while_building_the_application_keeps_the_masters_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    """Keys fine (``check_boot`` passes) but the database is not there: ``create_app`` fails after ``boot`` set up
    logging from the refused file. The running configuration keeps serving, so must its log level and file."""
    instance = make_instance(tmp_path / "var")
    monkeypatch.setenv("STS_CONFIG", str(instance.config))
    running = load_settings()
    old_log = tmp_path / "running.log"
    configure_logging("INFO", "json", old_log)
    monkeypatch.setattr(gunicorn_reload, "_last_good", [running])
    monkeypatch.setattr(gunicorn_reload, "_built", [])

    new_log = tmp_path / "refused.log"
    _replace_line(instance.config, "level = ", 'level = "DEBUG"')
    _replace_line(instance.config, "file = ", f'file = "{new_log}"')
    _replace_line(instance.config, "database = ", f'database = "{tmp_path / "missing.db"}"')
    text = instance.config.read_text()
    assert 'level = "DEBUG"' in text and str(new_log) in text and "missing.db" in text

    assert gunicorn_reload.settings_for_gunicorn() is running  # refused
    assert gunicorn_reload.rebuild_application(object()) is False
    root = logging.getLogger()
    assert root.level == logging.INFO
    logging.getLogger("sts.test").debug("after the refused reload")
    logging.getLogger("sts.test").info("still here")
    for handler in root.handlers:
        handler.flush()
    assert "reload refused" in old_log.read_text()
    assert "still here" in old_log.read_text()
    assert "after the refused reload" not in old_log.read_text()
    assert not new_log.exists() or "still here" not in new_log.read_text()


def test_a_reload_that_changes_the_log_file_closes_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    """Each reload replaces the master's log handler: the replaced one is closed (its file descriptor was kept
    open for the life of the master, one more for every reload)."""
    instance = make_instance(tmp_path / "var")
    monkeypatch.setenv("STS_CONFIG", str(instance.config))
    running = load_settings()
    configure_logging("INFO", "json", tmp_path / "running.log")
    (old_handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_sts_handler", False)]
    assert isinstance(old_handler, logging.FileHandler) and old_handler.stream is not None
    monkeypatch.setattr(gunicorn_reload, "_last_good", [running])
    monkeypatch.setattr(gunicorn_reload, "_built", [])
    _replace_line(instance.config, "file = ", f'file = "{tmp_path / "new.log"}"')

    assert gunicorn_reload.settings_for_gunicorn() is not running  # accepted
    application = gunicorn_reload._built[0]
    try:
        assert old_handler not in logging.getLogger().handlers
        assert old_handler.stream is None  # closed
    finally:
        application.close()


def test_the_master_refuses_half_a_tls_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    """At start the master stops with the problem; on a reload it keeps the running configuration (gunicorn
    would otherwise drop TLS from the listener it re-reads)."""
    instance = make_instance(tmp_path / "var")
    monkeypatch.setenv("STS_CONFIG", str(instance.config))
    monkeypatch.setattr(gunicorn_reload, "_last_good", [])
    monkeypatch.setattr(gunicorn_reload, "_built", [])
    monkeypatch.setenv("STS_SERVER_TLS_KEY", "")
    with pytest.raises(SystemExit):
        gunicorn_reload.settings_for_gunicorn()
    assert "tls_cert and tls_key go together" in capsys.readouterr().err

    monkeypatch.delenv("STS_SERVER_TLS_KEY")
    running = gunicorn_reload.settings_for_gunicorn()
    assert running.server.tls_key is not None
    _replace_line(instance.config, "tls_key = ", "# tls_key removed")
    assert gunicorn_reload.settings_for_gunicorn() is running  # refused
    assert gunicorn_reload.rebuild_application(object()) is False
