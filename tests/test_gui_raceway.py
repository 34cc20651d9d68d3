"""KartStudio Raceway in the app: the game box's entry (built from source, a track number), both
seats recorded, and Versus in the real emulator (mupen64plus + our plugin under Xvfb)."""

import tempfile

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from emulator_support import needs_emulator, xdisplay  # noqa: E402,F401 - fixtures
from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.emulator.raceway import toolchain_missing as raceway_toolchain_missing  # noqa: E402
from kartstudio.pads.base import ScriptedPadSource  # noqa: E402
from kartstudio.session import open_session  # noqa: E402
from kartstudio.settings import Settings, SettingsError, load_settings, save_settings  # noqa: E402
from test_gui import window  # noqa: E402,F401 - fixture

TRACK = 7


def test_the_game_box_offers_raceway_with_a_track_and_says_when_the_compiler_is_missing(window, monkeypatch,
                                                                                        tmp_path):
    from kartstudio.emulator import raceway
    from kartstudio.gui.game_controller import SOURCE_LABELS

    box = window.source_box
    assert box.findData("raceway") >= 0 and box.itemText(box.findData("raceway")) == SOURCE_LABELS["raceway"]
    assert not window.track_box.isVisibleTo(window)  # a Raceway control: hidden for the practice track
    # Nothing built yet and no cross compiler: one line that says what to install, Start disabled.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(raceway, "TOOLS", ("no-such-mips-gcc", *raceway.TOOLS[1:]))
    box.setCurrentIndex(box.findData("raceway"))
    assert window.track_box.isVisibleTo(window) and not window.rom_button.isVisibleTo(window)
    text = window.notice.text()
    assert "sudo apt-get install gcc-mips-linux-gnu binutils-mips-linux-gnu" in text and "no-such-mips-gcc" in text
    assert "\n" not in text and "Traceback" not in text
    assert not window.start_button.isEnabled() and not window.start_game()
    window.track_box.setValue(123)
    assert load_settings().game_source == "raceway" and load_settings().raceway_track == 123
    s = load_settings()
    s.raceway_track = 1000
    with pytest.raises(SettingsError, match="0..999"):
        save_settings(s)


def fixed_model(path):
    """A kartstudio network (real TensorFlow, real conv layers) whose outputs never change: stick half
    right, A held, B and R up, so the game's own report can show it received the AI's inputs."""
    from kartstudio.model import build_model, save_model

    model = build_model("kartstudio")
    for name, bias in (("stick", [np.arctanh(0.5), 0.0]), ("buttons", [6.0, -6.0, -6.0])):
        layer = model.get_layer(name)
        kernel, _ = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.array(bias, np.float32)])
    return save_model(model, path)


def _recent_states(backend) -> list:
    """The game's last reports (the game thread appends to them: copy until a copy holds)."""
    for _ in range(50):
        try:
            return list(backend.state_reader.recent)
        except RuntimeError:  # appended to while copied
            continue
    raise AssertionError("the state reader never held still")


@pytest.mark.emulator
@needs_emulator
@pytest.mark.skipif(bool(raceway_toolchain_missing()), reason="the MIPS C compiler is not installed "
                    "(apt-get install gcc-mips-linux-gnu)")
def test_raceway_from_the_game_box_records_both_seats_and_races_the_ai(qtbot, xdisplay, monkeypatch, tmp_path):
    from kartstudio.gui.main_window import MainWindow

    monkeypatch.setenv("DISPLAY", xdisplay)  # the emulator's display; Qt itself stays offscreen
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # no ROM built yet: the app builds it
    model = fixed_model(tmp_path / "fixed.keras")
    window = MainWindow(Settings(game_source="raceway", raceway_track=TRACK))
    qtbot.addWidget(window)
    window.show()
    assert window.source_box.currentData() == "raceway" and window.track_box.value() == TRACK
    human = ScriptedPadSource("human", policy=lambda: ControllerState(x=-30, b=True))
    window.game.add_pad(human)
    assert window.start_game(), window.notice.text()
    assert window.game.building  # off the UI thread, and said so
    window._refresh_status()
    assert "building the game" in window.status_label.text()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)
    backend = window.game.backend
    backend.state_reader.wait(lambda f: f.phase in ("countdown", "race"), timeout=20)
    assert backend.state_reader.latest.track == TRACK and backend.state_reader.latest.players == 2
    window._refresh_status()
    assert window.status_label.text().startswith(f"● Raceway track {TRACK} running")

    # Record: the Raceway expert drives seat 1, the person's pad seat 2; both seats record.
    tab = window.record_tab
    tab.refresh_drivers()
    assert tab.panels[1].choose_driver("expert")
    assert tab.panels[1].current_choice().label == "Expert driver (Raceway)"
    assert tab.panels[2].choose_driver("pad:script:human")
    assert tab.start_all()
    qtbot.wait(2000)
    tab.stop_all()
    qtbot.waitUntil(lambda: not any(p.busy or p.recording for p in tab.panels.values()), timeout=30_000)
    paths = [p.path for p in tab.panels.values()]
    assert paths[0].name.endswith(f"-{TRACK}-p1.h5") and paths[1].name.endswith(f"-{TRACK}-p2.h5")
    for seat, path in enumerate(paths, 1):
        with open_session(path) as s:
            assert s.meta.game == "raceway" and s.meta.track == str(TRACK) and s.meta.seat == seat and len(s) > 20
            assert s.meta.pad_name == ("Expert driver (Raceway)" if seat == 1 else "human")
            assert s.frame(len(s) - 1).std() > 5  # the road, not a blank half

    # Versus: the AI drives seat 1 in the emulator, the person seat 2, the maps update.
    vs = window.versus_tab
    window.tabs.setCurrentWidget(vs)
    vs.refresh_drivers()
    vs.human_box.setCurrentIndex(vs.human_box.findText("human"))
    vs.takeover_box.setCurrentIndex(vs.takeover_box.findText("human"))
    vs.choose_model(model)
    assert vs.start_versus()
    qtbot.waitUntil(lambda: vs.racing, timeout=90_000)
    qtbot.waitUntil(lambda: vs.activation_frames > 5, timeout=120_000)  # TensorFlow's start is slow under load
    assert vs.conv2_view.has_image() and vs.conv4_view.has_image()
    first = vs.pilot_driver.steps
    qtbot.wait(2000)
    assert vs.pilot_driver.steps > first + 10  # the AI drove for the two seconds
    ai = vs.pilot_driver.snapshot()[2]
    assert ai.a and not ai.b and ai.x > 20
    # The game's state channel: what the game read from each seat's pad in its last frames.
    recent = [f for f in _recent_states(backend) if f.phase in ("countdown", "race")][-30:]
    assert len(recent) >= 20
    assert all(f.seat(1).controller == ai for f in recent[-10:]), [f.seat(1).controller for f in recent[-10:]]
    assert all(f.seat(2).controller == ControllerState(x=-30, b=True) for f in recent[-10:])
    # A takeover records a correction session of game raceway on this track.
    assert vs.set_takeover(True)
    qtbot.wait(1500)
    assert vs.set_takeover(False, wait=True)
    assert len(vs.corrections_saved) == 1
    with open_session(vs.corrections_saved[0]) as s:
        assert s.meta.kind == "correction" and s.meta.game == "raceway" and s.meta.track == str(TRACK) and len(s) > 5
    window.stop_game()
    assert not window.game.running
    window.close()
