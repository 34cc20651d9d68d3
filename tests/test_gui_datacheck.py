"""The Datasets tab's data check panel, with real Qt widgets offscreen over generated sessions:
the check runs on a worker thread and its findings are listed, one line each."""

import pytest

pytest.importorskip("pytestqt")

from test_datacheck import healthy_labels, write  # noqa: E402

from kartstudio import datacheck  # noqa: E402


@pytest.fixture
def tab(qtbot, tmp_path, monkeypatch):
    from kartstudio.gui.datasets_tab import DatasetsTab
    from kartstudio.settings import Settings

    monkeypatch.setattr(datacheck, "MIN_FRAMES", 300)  # generated sessions are a few hundred frames
    (tmp_path / "data" / "sessions").mkdir(parents=True)
    t = DatasetsTab(Settings(data_folder=str(tmp_path / "data")))
    qtbot.addWidget(t)
    return t


def _wait(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.running and panel.report is not None, timeout=60_000)


def test_panel_lists_the_findings_of_every_listed_session(tab, qtbot):
    folder = tab.folder
    one_sided = healthy_labels(600)
    one_sided[one_sided[:, 0] < 0.02, 0] = 0.0
    write(folder / "right-only.h5", one_sided)
    idle = healthy_labels(600)
    idle[100:200, 2] = 0.0
    idle_path = write(folder / "idle.h5", idle, layout="whole")
    (folder / "broken.h5").write_bytes(b"not hdf5 at all")
    tab.refresh()
    panel = tab.check_panel
    panel.all_button.click()
    assert panel.running  # on a worker thread: the window goes on
    _wait(qtbot, panel)
    lines = [panel.findings.item(i).text() for i in range(panel.findings.count())]
    assert len(lines) == 3  # the other session steers both ways: together they are not one-sided
    assert "broken.h5" in lines[0] and "not a readable KartStudio session" in lines[0]
    assert lines[1].startswith("these sessions mix whole-screen recordings (idle.h5)")
    assert lines[2].startswith("idle.h5: 1 stretch of 5 s or more without gas")
    assert "checked 2 sessions, 1,200 frames" in panel.status.text().lower()
    assert "2 findings, 1 unreadable" in panel.status.text()
    # the idle stretch names its session: double-clicking it selects that session in the list
    item = next(panel.findings.item(i) for i in range(panel.findings.count())
                if panel.findings.item(i).text().startswith("idle.h5"))
    panel.findings.itemDoubleClicked.emit(item)
    assert tab.selected_path() == idle_path


def test_panel_checks_only_the_selected_sessions(tab, qtbot):
    folder = tab.folder
    good = write(folder / "good.h5", healthy_labels(600))
    bad = healthy_labels(600)
    bad[:, 0] = 0.0
    write(folder / "dead.h5", bad)
    tab.refresh()
    panel = tab.check_panel
    assert tab.select_path(good)
    panel.selected_button.click()
    _wait(qtbot, panel)
    assert panel.findings.count() == 0 and "nothing found" in panel.status.text()
    assert panel.report.sessions == [str(good)]
    panel.all_button.click()
    _wait(qtbot, panel)
    # the good session steers for both: 600 of 1,200 frames straight is not dead steering
    assert panel.report.frames == 1200 and panel.findings.count() == 0
    tab.table.clearSelection()
    assert panel.start([]) is None and "No sessions to check" in panel.status.text()
