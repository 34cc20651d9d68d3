"""The window on the practice track (no ROM): Record session writes both seats, versus races a model."""

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("kartstudio.practice.backend", reason="the practice track (kartstudio.practice) is not in this build")

from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.pads.base import ScriptedPadSource  # noqa: E402
from kartstudio.session import open_session  # noqa: E402
from kartstudio.versus import AI_SEAT  # noqa: E402
from test_gui import window  # noqa: E402,F401 - fixture


def _start(window, qtbot):
    assert window.settings.game_source == "practice" and not window.settings.rom_path
    assert window.start_game(), window.notice.text()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)


def test_record_session_writes_two_distinct_seat_files(window, qtbot):
    _start(window, qtbot)
    tab = window.record_tab
    left = ScriptedPadSource("left", policy=lambda: ControllerState(x=-60, a=True))
    right = ScriptedPadSource("right", policy=lambda: ControllerState(x=50, b=True))
    window.game.add_pad(left)
    window.game.add_pad(right)
    tab.refresh_drivers()
    assert tab.panels[1].choose_driver("pad:script:left") and tab.panels[2].choose_driver("pad:script:right")
    assert tab.panels[2].codec_box.currentData() == window.settings.frames_codec == "lossless"
    tab.panels[2].codec_box.setCurrentIndex(tab.panels[2].codec_box.findData("jpeg"))  # the compact codec
    tab.session_button.click()
    assert not tab.panels[2].codec_box.isEnabled()  # fixed while recording
    assert tab.recording
    qtbot.waitUntil(lambda: all(p.recorder.counters()[s].written >= 20 for s, p in tab.panels.items()), timeout=60_000)
    assert tab.panels[1].preview.has_image() and tab.panels[2].preview.has_image()
    assert "frames" in tab.panels[1].counters.text() and "dropped" in tab.panels[1].counters.text()
    tab.session_button.click()
    qtbot.waitUntil(lambda: not any(p.busy or p.recording for p in tab.panels.values()), timeout=30_000)
    p1, p2 = tab.panels[1].path, tab.panels[2].path
    assert p1 != p2 and p1.parent == p2.parent == window.settings.sessions_folder
    with open_session(p1) as s1, open_session(p2) as s2:
        assert (s1.meta.seat, s2.meta.seat) == (1, 2) and s1.meta.game == "practice"
        assert len(s1) >= 20 and len(s2) >= 20 and s1.complete and s2.complete
        assert tuple(s1.meta.storage_size) == tuple(window.settings.storage_size)
        late1 = [s1.state(i) for i in range(len(s1) // 2, len(s1))]
        late2 = [s2.state(i) for i in range(len(s2) // 2, len(s2))]
        # the two halves differ: seat 1 is the top of the split screen, seat 2 the bottom
        assert (s1.frame(len(s1) - 1) != s2.frame(len(s2) - 1)).any()
        assert (s1.codec, s2.codec) == ("lossless", "jpeg") and s2.frame(3).shape == s1.frame(3).shape
        # one Recorder for both seats: the button starts and stops them on the same frames
        assert list(s1.frame_numbers[:]) == list(s2.frame_numbers[:])
    assert all(s.x == -60 and s.a for s in late1) and all(s.x == 50 and s.b for s in late2)
    assert window.datasets_tab.table.rowCount() == 2  # the browser lists them at once
    window.stop_game()


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory):
    from kartstudio.model import build_model, save_model

    return save_model(build_model("kartstudio"), tmp_path_factory.mktemp("models") / "fresh.keras")


def test_versus_on_the_practice_track_shows_maps_and_records_a_correction(window, qtbot, fresh_model):
    tab = window.versus_tab
    window.tabs.setCurrentWidget(tab)
    human = ScriptedPadSource("human", policy=lambda: ControllerState(x=-30, a=True))
    window.game.add_pad(human)
    tab.refresh_drivers()
    tab.takeover_box.setCurrentIndex(tab.takeover_box.findText("human"))
    tab.choose_model(fresh_model)
    assert tab.start_versus()  # starts the practice track itself
    qtbot.waitUntil(lambda: tab.racing, timeout=90_000)
    qtbot.waitUntil(lambda: tab.activation_frames > 5, timeout=30_000)
    assert tab.conv2_view.has_image() and tab.conv4_view.has_image()
    assert tab.ai_view.has_image() and tab.human_view.has_image()
    tab.takeover_button.click()
    assert tab.taken_over
    qtbot.wait(1500)
    tab.takeover_button.click()
    qtbot.waitUntil(lambda: len(tab.corrections_saved) == 1, timeout=30_000)
    with open_session(tab.corrections_saved[0]) as s:
        assert s.meta.kind == "correction" and s.meta.seat == 1 and len(s) > 5
        late = [s.state(i) for i in range(len(s) // 2, len(s))]
    assert all(st.x == -30 and st.a for st in late)
    # the pad button: L on the takeover pad (Q on the keyboard) toggles the takeover too
    keyboard = window.game.keyboard
    tab.takeover_box.setCurrentIndex(tab.takeover_box.findText("Keyboard"))
    keyboard.push(ControllerState(l=True))
    keyboard.push(ControllerState())
    qtbot.waitUntil(lambda: tab.taken_over, timeout=5_000)
    keyboard.push(ControllerState(l=True))
    keyboard.push(ControllerState())
    qtbot.waitUntil(lambda: not tab.taken_over, timeout=5_000)
    qtbot.waitUntil(lambda: len(tab.corrections_saved) == 2, timeout=30_000)
    # a real (SDL virtual) pad plugged in now: listed at once; L held for one poll of the pad thread
    import time

    from kartstudio.pads import sdl
    from kartstudio.pads.virtual import VirtualPad

    pad = VirtualPad("Tap pad", product=71)
    try:
        qtbot.waitUntil(lambda: tab.takeover_box.findText("Tap pad") >= 0, timeout=3_000)
        tab.takeover_box.setCurrentIndex(tab.takeover_box.findText("Tap pad"))
        qtbot.wait(100)  # the tab takes this pad as its takeover pad
        manager, source = sdl.manager(), tab._pad(tab.takeover_box)
        before, deadline = source.l_presses, time.monotonic() + 2
        pad.set_button(9, True)  # leftshoulder: L
        while source.l_presses == before and time.monotonic() < deadline:  # no Qt event meanwhile
            time.sleep(0.0005)
        pad.set_button(9, False)
        while source.last.l and time.monotonic() < deadline:  # let go within a poll or two
            time.sleep(0.0005)
        assert not source.last.l and not tab.taken_over  # the tab never saw L held
        qtbot.waitUntil(lambda: tab.taken_over, timeout=5_000)
    finally:
        pad.detach()
    tab.set_takeover(False, wait=True)
    tab.stop_versus()
    window.stop_game()


def test_the_expert_drives_a_seat_and_its_moves_are_the_labels(window, qtbot):
    pytest.importorskip("kartstudio.practice.expert")
    _start(window, qtbot)
    tab = window.record_tab
    assert tab.panels[1].choose_driver("expert")
    assert tab.panels[1].start()
    qtbot.waitUntil(lambda: tab.panels[1].recorder.counters()[1].written >= 60, timeout=60_000)
    tab.panels[1].stop(wait=True)
    with open_session(tab.panels[1].path) as s:
        states = [s.state(i) for i in range(len(s))]
        assert s.meta.extra["driver"] == "Expert driver (practice track)"
        # no pad drove it: named by its driver (not "seat 1 driver"), no pad GUID, the app as its source
        assert (s.meta.pad_name, s.meta.pad_guid, s.meta.source) == ("Expert driver (practice track)", "",
                                                                      "kartstudio-gui")
    assert sum(st.a for st in states) > len(states) // 2  # it drives: mostly on the gas
    assert len({st.x for st in states}) > 3  # and steers
    assert window.game.backend.tiles(1)[0] > 3  # along the track
    window.stop_game()


def test_record_session_starts_the_game_when_needed(window, qtbot):
    tab = window.record_tab
    assert not window.game.running
    tab.session_button.click()  # first launch: one click starts the practice track and records
    qtbot.waitUntil(lambda: tab.recording, timeout=60_000)
    qtbot.waitUntil(lambda: all(p.recorder.counters()[s].written >= 5 for s, p in tab.panels.items()), timeout=30_000)
    window.stop_game()  # stopping the game finishes both files
    assert not tab.recording
    for panel in tab.panels.values():
        with open_session(panel.path) as s:
            assert s.complete and len(s) >= 5


def test_watch_the_ai_drive_one_car_on_the_whole_screen_with_a_held_override(window, qtbot, tmp_path):
    """The Versus tab's 1-player mode: the practice track restarts with one car on the whole screen,
    a whole-screen model drives it, holding L on the override pad hands the car to the person (a
    correction session with their labels), letting go hands it back; in 2-player mode the same
    model is refused in one line."""
    from test_solo import GAS, HeldPad, _gas_model

    model = _gas_model(tmp_path / "whole.keras", "whole")
    tab = window.versus_tab
    window.tabs.setCurrentWidget(tab)
    person = HeldPad("person")
    window.game.add_pad(person)
    tab.refresh_drivers()
    tab.takeover_box.setCurrentIndex(tab.takeover_box.findText("person"))
    tab.set_mode(1)
    assert tab.start_button.text() == "▶ Watch the AI drive" and tab.takeover_pad_label.text() == "Override pad"
    assert tab.human_box.isHidden() and tab.human_view.isHidden() and "Hold L" in tab.takeover_label.text()
    tab.choose_model(model)
    assert tab.start_versus()
    qtbot.waitUntil(lambda: tab.racing, timeout=90_000)
    game = window.game.backend
    assert window.game.running_players == 1 and game.layout.players == 1 and tab.race.players == 1
    qtbot.waitUntil(lambda: tab.pilot_driver.steps > 30 and tab.activation_frames > 3, timeout=30_000)
    assert window.game.loop.status.applied[AI_SEAT] == GAS and game.tiles(1)[0] > 3  # the AI drives the car
    assert tab.ai_view.has_image() and "(1 player)" in window.game.title()
    person.push(ControllerState(x=-45, b=True, l=True))  # hold L
    qtbot.waitUntil(lambda: tab.taken_over, timeout=5_000)
    assert "while you hold L" in tab.takeover_label.text()
    qtbot.waitUntil(lambda: window.game.loop.status.applied[AI_SEAT] == ControllerState(x=-45, b=True), timeout=5_000)
    qtbot.wait(800)
    assert tab.taken_over  # held: still the person's
    person.push(ControllerState(x=-45, b=True))  # let go of L
    qtbot.waitUntil(lambda: not tab.taken_over, timeout=5_000)
    qtbot.waitUntil(lambda: len(tab.corrections_saved) == 1, timeout=30_000)
    qtbot.waitUntil(lambda: window.game.loop.status.applied[AI_SEAT] == GAS, timeout=5_000)  # the AI again
    with open_session(tab.corrections_saved[0]) as s:
        assert s.meta.kind == "correction" and s.meta.layout == "whole" and len(s) > 5
        assert all(s.state(i) == ControllerState(x=-45, b=True) for i in range(len(s)))
    # 2 players with the same whole-screen model: the game restarts split, the model is refused in one line
    tab.set_mode(2)
    assert not tab.racing and tab.start_button.text() == "▶ Race the AI" and not tab.human_box.isHidden()
    assert tab.start_versus()
    qtbot.waitUntil(lambda: "race it in 1-player mode" in tab.notice.text(), timeout=90_000)
    assert not tab.racing and window.game.running_players == 2 and tab.start_button.text() == "▶ Race the AI"
    window.stop_game()
