"""The window's shell, settings, launchers and the Datasets tab, with real Qt widgets offscreen."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from kartstudio.controller import ControllerState  # noqa: E402
from kartstudio.session import SessionMeta, SessionWriter, open_session  # noqa: E402
from kartstudio.settings import Settings, load_settings, save_settings  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    (tmp_path / "xdg").mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the trash lives here in tests
    from kartstudio.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def write_session(folder: Path, name: str, n: int = 40, seat: int = 1, kind: str = "play") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    meta = SessionMeta(seat=seat, game="practice", track="seed-3", kind=kind, storage_size=(24, 64))
    with SessionWriter(path, meta) as w:
        for i in range(n):
            frame = np.full((24, 64, 3), (i * 5) % 256, np.uint8)
            w.append(frame, ControllerState(x=int(80 * np.sin(i / 5)), a=i % 2 == 0), 100.0 + i / 30, i)
    return path


# -- settings ---------------------------------------------------------------------------------------

def test_settings_round_trip_and_validation(tmp_path):
    s = load_settings()
    assert s.game_source == "practice" and not s.rom_path and not s.problem
    s.storage_size = (66, 200)
    s.video_plugin = "mupen64plus-video-glide64mk2"
    path = save_settings(s)
    assert path.parent == Path(os.environ["KARTSTUDIO_CONFIG_DIR"])
    again = load_settings()
    assert again.storage_size == (66, 200) and again.video_plugin == "mupen64plus-video-glide64mk2"
    s.storage_size = (0, 5)
    with pytest.raises(Exception, match="storage size"):
        save_settings(s)
    s.storage_size = (120, 320)
    s.rom_path = str(tmp_path / "missing.z64")
    with pytest.raises(Exception, match="does not exist"):
        save_settings(s)


def test_damaged_settings_file_gives_defaults_and_says_so():
    from kartstudio.settings import settings_path

    p = settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{ not json")
    s = load_settings()
    assert s == Settings() and "could not be read" in s.problem and str(p) in s.problem


# -- the window ---------------------------------------------------------------------------------------

def test_first_launch_without_rom_says_how_to_add_it(window):
    assert window.settings.game_source == "practice"
    assert "Choose ROM" in window.notice.text() or "practice track is not available" in window.notice.text()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Record", "Datasets", "Training", "Versus the AI"]
    for i in range(window.tabs.count()):  # every tab shows without error
        window.tabs.setCurrentIndex(i)


def test_choosing_a_file_that_is_not_a_rom_is_refused_with_a_message(window, tmp_path):
    bad = tmp_path / "notes.z64"
    bad.write_bytes(b"hello" * 1000)
    assert not window.set_rom(str(bad))
    assert window.notice.level == "error" and "not an N64 ROM" in window.notice.text()
    assert window.settings.rom_path == ""


def test_the_empty_datasets_plot_reads_plain_frame_numbers_with_its_legend_on_top(window):
    plot = window.datasets_tab.plot
    (x0, x1), _ = plot.viewRange()
    assert -1 <= x0 and x1 <= 101  # frames 0..100 until a session is chosen, not -400..400
    assert not plot.getAxis("bottom").autoSIPrefix and not plot.getAxis("left").autoSIPrefix  # no "(x0.001)"
    assert plot.plotItem.legend.zValue() > max(c.zValue() for c in window.datasets_tab.curves.values())


def test_screenshot_command_writes_a_png(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([sys.executable, "-m", "kartstudio", "gui", "--screenshot", str(out)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PyQt6 import QtGui

    image = QtGui.QImage(str(out))
    assert image.width() >= 1000 and image.height() >= 700


def test_install_desktop_writes_entry_and_icons(tmp_path):
    from kartstudio.cli import main

    assert main(["install-desktop", "--prefix", str(tmp_path)]) == 0
    entry = (tmp_path / "applications" / "kartstudio.desktop").read_text()
    assert "Name=KartStudio" in entry and "Icon=kartstudio" in entry
    exec_line = next(line for line in entry.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(" gui") and ("kartstudio" in exec_line)
    assert (tmp_path / "icons/hicolor/256x256/apps/kartstudio.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "icons/hicolor/scalable/apps/kartstudio.svg").read_text().startswith("<svg")


# -- datasets ------------------------------------------------------------------------------------------

def test_datasets_lists_scrubs_trims_and_deletes(window, qtbot, tmp_path):
    folder = window.settings.sessions_folder
    a = write_session(folder, "a-p1.h5", n=40)
    write_session(folder, "b-p2.h5", n=12, seat=2, kind="correction")
    (folder / "broken.h5").write_bytes(b"not hdf5 at all")
    tab = window.datasets_tab
    window.tabs.setCurrentWidget(tab)
    tab.refresh()
    names = [tab.table.item(r, 0).text() for r in range(tab.table.rowCount())]
    assert names == ["a-p1.h5", "b-p2.h5", "broken.h5"]
    assert tab.table.item(1, 1).text() == "correction" and tab.table.item(1, 2).text() == "2"
    assert tab.table.item(0, 4).text() == "40"
    assert tab.table.item(2, 1).text() == "unreadable"

    assert tab.select_path(a)
    assert tab.session is not None and tab.image.has_image()
    xs, ys = tab.curves["x"].getData()
    assert len(xs) == 40 and np.allclose(ys, tab.actions[:, 0])
    tab.slider.setValue(25)
    assert "frame 26/40" in tab.frame_label.text()
    assert np.all(tab.image._pixmap.toImage().pixelColor(0, 0).red() == (25 * 5) % 256)

    tab.slider.setValue(10)
    tab.mark_start()
    tab.slider.setValue(19)
    tab.mark_end()  # frames 10..19 excluded
    with open_session(a) as s:
        assert s.excluded == [(10, 20)] and len(s.included_indices()) == 30
    assert len(tab.excluded_items) == 1 and "10 frames excluded" in tab.trim_label.text()
    tab.slider.setValue(15)
    tab.remove_exclusion_here()
    with open_session(a) as s:
        assert s.excluded == []

    assert tab.select_path(a)
    assert tab.delete_selected(confirm=False)
    assert not a.exists()
    trash = tmp_path / "xdg" / "Trash" / "files"
    assert (trash / "a-p1.h5").exists()  # in the trash, not gone
    assert tab.table.rowCount() == 2


def _tensorkart_folder(root: Path, n: int = 6) -> Path:
    import mss.tools

    folder = root / "samples" / "2017-01-01_10:00:00"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        img = np.zeros((480, 640, 3), np.uint8)
        img[:240] = (10 * i, 100, 50)
        mss.tools.to_png(img.tobytes(), (640, 480), output=str(folder / f"img_{i}.png"))
        lines.append(f"samples/2017-01-01_10:00:00/img_{i}.png,{i / 10:.2f},0.0,1,0,0")
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_import_tensorkart_folder_with_progress(window, qtbot, tmp_path):
    folder = _tensorkart_folder(tmp_path)
    tab = window.datasets_tab
    task = tab.start_import([folder])
    assert task is not None and tab.progress is not None
    qtbot.waitUntil(lambda: tab.import_task is None, timeout=60_000)
    assert "Imported 6 frames" in tab.notice.text()
    path = tab.selected_path()
    with open_session(path) as s:
        assert len(s) == 6 and s.meta.source == "tensorkart-record" and s.layout == "whole"
        assert np.allclose(s.actions[:, 0], [i / 10 for i in range(6)], atol=1e-7)  # exact labels
    row = tab.table.currentRow()
    assert tab.table.item(row, 2).text() == "whole" and "whole screen" in tab.viewer_title.text()


def test_import_of_a_folder_without_data_csv_says_so(window, tmp_path):
    (tmp_path / "empty").mkdir()
    assert window.datasets_tab.start_import([tmp_path / "empty"]) is None
    assert "no data.csv" in window.datasets_tab.notice.text()


def test_keyboard_drives_a_pad_only_while_a_game_reads_it(window, qtbot):
    from PyQt6 import QtCore

    pad = window.game.keyboard
    window.show()
    window.activateWindow()
    window.record_tab.setFocus()
    qtbot.waitUntil(lambda: window.record_tab.hasFocus())
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Left)
    assert pad.last.is_neutral  # no game running: keys are left to the widgets
    pad.enabled = True
    qtbot.keyPress(window, QtCore.Qt.Key.Key_Left)
    qtbot.keyPress(window, QtCore.Qt.Key.Key_X)
    assert pad.last.x == -80 and pad.last.a
    qtbot.keyRelease(window, QtCore.Qt.Key.Key_Left)
    qtbot.keyRelease(window, QtCore.Qt.Key.Key_X)
    assert pad.last.is_neutral
    pad.enabled = False


def test_settings_dialog_saves_and_refuses_bad_values(window, qtbot, tmp_path):
    from kartstudio.gui.settings_dialog import SettingsDialog
    from kartstudio.settings import settings_path

    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.rom[1].setText(str(tmp_path / "nothing.z64"))
    dialog.save()
    assert dialog.notice.level == "error" and "does not exist" in dialog.notice.text()
    assert not settings_path().exists()
    dialog.rom[1].setText("")
    dialog.data[1].setText(str(tmp_path / "elsewhere"))
    dialog.width_box.setValue(200)
    dialog.height_box.setValue(66)
    dialog.codec.setCurrentText("jpeg")
    dialog.quality.setValue(80)
    dialog.save()
    assert dialog.result() == dialog.DialogCode.Accepted
    saved = json.loads(settings_path().read_text())
    assert saved["data_folder"] == str(tmp_path / "elsewhere") and saved["storage_size"] == [66, 200]
    assert saved["frames_codec"] == "jpeg" and saved["jpeg_quality"] == 80
    assert window.settings.frames_codec == "jpeg" and load_settings().jpeg_quality == 80
    assert window.settings.sessions_folder == tmp_path / "elsewhere" / "sessions"


def test_no_display_gives_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = subprocess.run([sys.executable, "-m", "kartstudio"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("kartstudio: error: no display") and "Traceback" not in run.stderr


def test_import_tensorkart_arrays(window, qtbot, tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (30, 66, 200, 3), dtype=np.uint8)
    y = np.zeros((30, 5), np.float32)
    y[:, 0] = np.linspace(-1, 1, 30)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", y)
    tab = window.datasets_tab
    assert tab.start_import_arrays(tmp_path / "X.npy", tmp_path / "y.npy") is not None
    qtbot.waitUntil(lambda: tab.import_task is None, timeout=60_000)
    assert "Imported 30 frames" in tab.notice.text()
    with open_session(tab.selected_path()) as s:
        assert len(s) == 30 and np.array_equal(s.frames[7], x[7])


def test_keys_stay_with_dialogs_text_fields_and_other_tabs_while_a_game_runs(window, qtbot):
    from PyQt6 import QtCore, QtWidgets

    pad = window.game.keyboard
    pad.enabled = True  # as while a game runs
    window.show()
    window.activateWindow()
    name = window.record_tab.panels[1].name_edit
    name.setFocus()
    qtbot.waitUntil(name.hasFocus)
    name.clear()
    qtbot.keyClicks(name, "xcz")  # X/C/Z are A/B/Z on the pad, but this is a file name
    assert name.text() == "xcz" and pad.last.is_neutral
    window.tabs.setCurrentWidget(window.datasets_tab)
    window.datasets_tab.setFocus()
    qtbot.keyPress(QtWidgets.QApplication.focusWidget() or window, QtCore.Qt.Key.Key_Left)
    assert pad.last.is_neutral  # another tab: its scrubber and lists keep the arrows
    window.tabs.setCurrentWidget(window.record_tab)
    window.record_tab.setFocus()
    qtbot.waitUntil(window.record_tab.hasFocus)
    qtbot.keyPress(window.record_tab, QtCore.Qt.Key.Key_Left)
    assert pad.last.x == -80  # the Record view has the focus: the keys drive
    dialog = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, "Delete?", "Delete it?",
                                   QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                                   window)
    answers = []
    dialog.finished.connect(answers.append)
    QtCore.QTimer.singleShot(100, lambda: qtbot.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key.Key_Return))
    dialog.setDefaultButton(QtWidgets.QMessageBox.StandardButton.Yes)
    QtCore.QTimer.singleShot(5000, dialog.reject)  # if the pad swallowed Enter
    dialog.exec()
    assert answers == [QtWidgets.QMessageBox.StandardButton.Yes.value]  # Enter answered the dialog, not Start
    qtbot.keyRelease(window.record_tab, QtCore.Qt.Key.Key_Left)
    assert pad.last.is_neutral
    pad.enabled = False


def test_long_file_names_are_cut_in_the_middle_with_the_whole_name_on_hover(window, qtbot):
    from PyQt6 import QtCore

    middle = QtCore.Qt.TextElideMode.ElideMiddle
    long = "practice-seed-3-" + "very-long-track-description-" * 4 + "2024-05-01_12-30-59-p2.h5"
    path = write_session(window.settings.sessions_folder, long, n=5)
    model = window.settings.models_folder / ("model-" + "x" * 120 + "-epoch-07.keras")
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"listed by name only")

    tab = window.datasets_tab
    tab.refresh()
    assert tab.table.textElideMode() == middle and not tab.table.wordWrap()
    assert tab.table.item(0, 0).text() == long and tab.table.item(0, 0).toolTip() == str(path)

    window.training_tab.refresh_sessions()
    item = window.training_tab.session_list.item(0)
    assert window.training_tab.session_list.textElideMode() == middle and item.toolTip() == str(path)

    window.versus_tab.refresh_models()
    box = window.versus_tab.model_box
    assert box.currentText() == model.name and box.toolTip() == str(model)
    assert box.view().textElideMode() == middle

    # a label holding a path keeps its start and its end (the part that tells files apart)
    label = window.record_tab.folder_label
    label.setText(f"Sessions are saved in /home/someone/{'deep/' * 30}sessions-end")
    label.resize(200, label.height())
    shown = label.shown()
    assert "…" in shown and shown.startswith("Sessions are") and shown.endswith("sessions-end")
    assert label.toolTip() == label.text() and len(label.text()) > len(shown)
    label.resize(4000, label.height())
    assert label.shown() == label.text()
