"""What ``avrec serve`` prints (serving.console): log levels and the start-up line."""

from __future__ import annotations

import logging

import pytest

from serving.console import LOG_LEVELS, base_url, log_config, startup_line

SUMMARY = {"path": "/srv/b", "model": "hybrid", "n_users": 1500, "n_items": 302, "registered_items": 2,
           "search": "on", "registration": "on (POST /items, media under /srv/media)"}


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_access_log_at_info_whatever_the_level(level):
    loggers = log_config(level)["loggers"]
    number = 5 if level == "trace" else getattr(logging, level.upper())
    assert loggers["uvicorn.error"]["level"] == loggers["uvicorn"]["level"] == number
    assert loggers["uvicorn.access"]["level"] == min(number, logging.INFO)
    assert loggers["avrec"]["level"] == loggers["serving"]["level"] == number


def test_quiet_is_errors_only_and_the_default_config_is_untouched():
    from uvicorn.config import LOGGING_CONFIG

    loggers = log_config("debug", quiet=True)["loggers"]
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "avrec")
    assert {loggers[name]["level"] for name in names} == {logging.ERROR}
    assert LOGGING_CONFIG["loggers"]["uvicorn.access"]["level"] == "INFO"  # a copy was changed
    with pytest.raises(ValueError, match="chatty"):
        log_config("chatty")


def test_startup_line():
    line = startup_line(SUMMARY, "127.0.0.1", 8123)
    assert line == ("avrec serve: http://127.0.0.1:8123 (docs: http://127.0.0.1:8123/docs) serving /srv/b: hybrid, "
                    "1,500 users, 302 items (2 registered); search: on; registration: on (POST /items, media under "
                    "/srv/media); Ctrl-C stops")
    line = startup_line(SUMMARY, "0.0.0.0", 80, workers=4)
    assert line.startswith("avrec serve: http://0.0.0.0:80 on every interface (docs: http://0.0.0.0:80/docs)")
    assert "; 4 workers; Ctrl-C stops" in line
    assert base_url("::1", 8000) == "http://[::1]:8000"
