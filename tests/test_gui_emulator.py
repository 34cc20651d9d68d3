"""The window with the real emulator: mupen64plus + our input plugin under Xvfb, the project's test ROM."""

import pytest

pytest.importorskip("pytestqt")

from emulator_support import needs_emulator, testrom_path, xdisplay  # noqa: E402,F401 - fixtures
from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.pads.base import ScriptedPadSource  # noqa: E402
from kartstudio.session import open_session  # noqa: E402
from kartstudio.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.emulator, needs_emulator]


def test_record_session_from_the_emulator_labels_what_the_game_read(qtbot, testrom_path, xdisplay, monkeypatch):
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
    from kartstudio.gui.main_window import MainWindow

    monkeypatch.setenv("DISPLAY", xdisplay)  # the emulator's display; Qt itself stays offscreen
    # The project's test ROM plays as itself: sessions record it as game "kartstudio-test". The
    # default video plugin setting ("auto") picks the one that draws it.
    settings = Settings(game_source="mk64", rom_path=str(testrom_path))
    assert settings.video_plugin == "auto"
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    pad = ScriptedPadSource("script-1", policy=lambda: ControllerState(x=40, a=True))
    window.game.add_pad(pad)
    assert window.start_game()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)
    qtbot.waitUntil(lambda: "pinned at" in window.status_label.text(), timeout=5_000)
    assert window.game.backend.emulator.video == VIDEO_FOR_TEST_ROM
    qtbot.wait(1500)  # longer than a blank picture may last before it is said
    assert "blank" not in window.status_label.text() and not window.game.picture_problem()
    assert window.status_label.text().startswith("● Kartstudio Test running")
    assert not window.menus_button.isVisible()  # the VS macro knows Mario Kart 64's menus only
    # A setting the running game was started with: saving it says it needs a restart.
    before = {"video_plugin": "auto", "emulator": settings.emulator, "rom_path": settings.rom_path,
              "game_source": "mk64", "practice_seed": settings.practice_seed}
    settings.video_plugin = "mupen64plus-video-rice"
    window._settings_saved(before)
    assert "video plugin takes effect when the game restarts" in window.notice.text()
    tab = window.record_tab
    assert tab.panels[1].choose_driver("pad:script:script-1")
    assert tab.panels[2].choose_driver("nobody")
    assert tab.start_all()
    qtbot.wait(2500)
    tab.stop_all()
    qtbot.waitUntil(lambda: not any(p.busy or p.recording for p in tab.panels.values()), timeout=30_000)
    paths = [p.path for p in tab.panels.values()]
    assert paths[0] != paths[1]
    with open_session(paths[0]) as s1, open_session(paths[1]) as s2:
        assert s1.meta.seat == 1 and s2.meta.seat == 2 and s1.meta.game == "kartstudio-test"
        assert s1.meta.track == "kartstudio-test" and "kartstudio-test" in paths[0].name
        assert len(s1) > 15 and len(s2) > 15
        states1 = [s1.state(i) for i in range(len(s1))]
        states2 = [s2.state(i) for i in range(len(s2))]
    # labels are what the game read through the plugin: seat 1 held right+A, seat 2 nothing
    late = states1[len(states1) // 2 :]
    assert all(s.x == 40 and s.a for s in late)
    assert all(s.is_neutral for s in states2)
    window.stop_game()
    assert not window.game.running
    window.close()


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory):
    """An untrained model saved to a .keras file: real weights, real TensorFlow."""
    from kartstudio.model import build_model, save_model

    return save_model(build_model("kartstudio"), tmp_path_factory.mktemp("models") / "fresh.keras")


def test_versus_on_the_emulator_shows_maps_and_records_a_takeover(qtbot, testrom_path, xdisplay, monkeypatch,
                                                                   fresh_model):
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
    from kartstudio.gui.main_window import MainWindow

    monkeypatch.setenv("DISPLAY", xdisplay)
    settings = Settings(game_source="mk64", rom_path=str(testrom_path), video_plugin=VIDEO_FOR_TEST_ROM)
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    tab = window.versus_tab
    window.tabs.setCurrentWidget(tab)
    human = ScriptedPadSource("human", policy=lambda: ControllerState(x=-30, b=True))
    window.game.add_pad(human)
    tab.refresh_drivers()
    tab.takeover_box.setCurrentIndex(tab.takeover_box.findText("human"))
    tab.choose_model(fresh_model)
    assert tab.start_versus()
    qtbot.waitUntil(lambda: tab.racing, timeout=90_000)
    qtbot.waitUntil(lambda: tab.activation_frames > 5, timeout=120_000)  # TensorFlow's start is slow under load
    assert tab.conv2_view.has_image() and tab.conv4_view.has_image()
    assert "36" in tab.conv2_label.text() and "64" in tab.conv4_label.text()
    qtbot.waitUntil(lambda: tab.pilot_driver.steps > 5, timeout=10_000)  # counted on the game thread
    silences = window.game.backend.client.stats()["neutral_on_silence"]
    assert tab.set_takeover(True)
    qtbot.wait(1500)
    assert tab.set_takeover(False, wait=True)
    silences = window.game.backend.client.stats()["neutral_on_silence"] - silences  # during the takeover
    assert len(tab.corrections_saved) == 1
    with open_session(tab.corrections_saved[0]) as s:
        assert s.meta.kind == "correction" and s.meta.seat == 1 and len(s) > 5
        assert s.meta.extra["model"] == str(fresh_model)
        states = [s.state(i) for i in range(len(s))]
    # The session starts with the first frame the game read the human's state on and ends at the
    # hand-back: every label is the human's input as the game read it, none the AI's. The one
    # exception is the plugin's safety: when a loaded machine starves the app past the plugin's
    # silence limit (100 ms), the game reads neutral, and the label says so truthfully.
    human = ControllerState(x=-30, b=True)
    assert states[0] == human  # the frame the takeover took effect on
    assert all(st == human or (st.is_neutral and silences) for st in states), (states, silences)
    window.close()


def _emulator_window(qtbot, testrom_path, xdisplay, monkeypatch):
    from kartstudio.emulator.launcher import VIDEO_FOR_TEST_ROM
    from kartstudio.gui.main_window import MainWindow

    monkeypatch.setenv("DISPLAY", xdisplay)
    settings = Settings(game_source="mk64", rom_path=str(testrom_path), video_plugin=VIDEO_FOR_TEST_ROM)
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    assert window.start_game()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)
    return window


def test_an_existing_file_name_is_refused_and_closing_keeps_what_was_recorded(qtbot, testrom_path, xdisplay,
                                                                             monkeypatch):
    window = _emulator_window(qtbot, testrom_path, xdisplay, monkeypatch)
    tab = window.record_tab
    folder = window.settings.sessions_folder
    folder.mkdir(parents=True, exist_ok=True)
    taken = folder / "mine.h5"
    taken.write_bytes(b"someone's earlier recording")
    seat1 = tab.panels[1]
    seat1.name_edit.setText("mine")
    seat1.name_edit.textEdited.emit("mine")
    assert not seat1.start()
    assert "already exists" in seat1.notice.text() and "never overwrites" in seat1.notice.text()
    assert taken.read_bytes() == b"someone's earlier recording"
    # same name for both seats: the second is refused
    seat1.name_edit.setText("race")
    seat1.name_edit.textEdited.emit("race")
    seat2 = tab.panels[2]
    seat2.name_edit.setText("race.h5")
    seat2.name_edit.textEdited.emit("race.h5")
    assert seat1.start()
    assert not seat2.start()
    assert seat2.notice.level == "error"
    qtbot.wait(1000)
    window.force_close = True  # as if "Quit anyway?" was answered Yes (tests/test_gui_desktop.py asks for real)
    window.close()  # closing while recording finishes the file, nothing is lost
    assert not window.game.running
    with open_session(folder / "race.h5") as s:
        assert s.complete and len(s) > 5
