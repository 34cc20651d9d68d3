"""Shared test set-up: headless Qt and SDL, and settings/data kept out of the user's home."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Each test gets its own config and data folders, never the developer's real ones."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("KARTSTUDIO_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("KARTSTUDIO_DATA_DIR", str(base / "data"))
