"""One ROM check for every way a ROM gets in (Choose ROM, the Settings dialog, settings.json, the
start of the game): Mario Kart 64 or KartStudio's own test ROM; sessions record what the ROM is.
Also: the "emulator" setting is used, `doctor` reads the settings, odd header bytes print readably."""

import json
import struct

import pytest

from kartstudio.emulator import testrom
from kartstudio.emulator.rom import MIN_ROM_SIZE, RomError, check_rom, require_game_rom
from kartstudio.errors import KartStudioError
from kartstudio.settings import Settings, SettingsError, save_settings, settings_path


def header_rom(path, code=b"NKTE", name=b"MARIOKART64"):
    rom = bytearray(MIN_ROM_SIZE)
    struct.pack_into(">I", rom, 0, 0x80371240)
    rom[0x20:0x34] = name.ljust(20)
    rom[0x3B:0x3F] = code
    path.write_bytes(rom)
    return path


def test_the_one_check_and_what_sessions_record(tmp_path):
    assert require_game_rom(header_rom(tmp_path / "mk.z64")).game == "mk64"
    test_rom = tmp_path / "test.z64"
    test_rom.write_bytes(testrom.build_rom(b""))
    assert require_game_rom(test_rom).game == "kartstudio-test"
    with pytest.raises(RomError, match=r"'SUPERMARIO64' \(game code NSME\), not Mario Kart 64"):
        require_game_rom(header_rom(tmp_path / "sm64.z64", b"NSME", b"SUPERMARIO64"))


def test_nul_bytes_in_a_header_print_readably(tmp_path):
    odd = header_rom(tmp_path / "odd.z64", code=b"N\x00\x00E", name=b"HOME\x00BREW")
    info = check_rom(odd)
    assert "[N\\x00\\x00E]" in info.describe() and "HOME\\x00BREW" in info.describe()
    assert "\x00" not in info.describe() and "\x00" not in json.dumps(info.to_dict(), ensure_ascii=False)
    with pytest.raises(RomError) as refused:
        require_game_rom(odd)
    assert "\x00" not in str(refused.value) and "N\\x00\\x00E" in str(refused.value)


def test_settings_refuse_another_game(tmp_path):
    other = header_rom(tmp_path / "other.z64", b"NSME", b"SUPERMARIO64")
    with pytest.raises(SettingsError, match="not Mario Kart 64"):
        save_settings(Settings(rom_path=str(other)))
    assert not settings_path().exists()
    save_settings(Settings(rom_path=str(header_rom(tmp_path / "mk.z64"))))
    assert settings_path().exists()


def test_every_path_in_the_window_refuses_another_game(qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from kartstudio.gui.game_controller import SOURCE_LABELS
    from kartstudio.gui.main_window import MainWindow
    from kartstudio.gui.settings_dialog import SettingsDialog

    other = header_rom(tmp_path / "other.z64", b"NSME", b"SUPERMARIO64")
    # settings.json edited by hand: the window says so and the game does not start as "mk64"
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({"game_source": "mk64", "rom_path": str(other)}))
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert "not Mario Kart 64" in window.notice.text()
    assert not window.start_game() and not window.game.running
    assert "not Mario Kart 64" in window.notice.text()
    # Choose ROM…
    assert not window.set_rom(str(other)) and "not Mario Kart 64" in window.notice.text()
    mk = header_rom(tmp_path / "mk.z64")
    assert window.set_rom(str(mk)) and window.settings.rom_path == str(mk)
    assert window.notice.isHidden()  # the refusal of the other ROM went with it
    # File -> Build the test ROM: built where the user says, and chosen
    assert window.build_test_rom(str(tmp_path / "try.z64")) and window.settings.rom_path == str(tmp_path / "try.z64")
    assert not window.build_test_rom(str(tmp_path / "try.z64")) and "already exists" in window.notice.text()
    assert window.set_rom(str(mk))
    # the Settings dialog: the same check, and the sources by name
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    shown = [dialog.source.itemText(i) for i in range(dialog.source.count())]
    assert shown == [SOURCE_LABELS["practice"], SOURCE_LABELS["mk64"], SOURCE_LABELS["raceway"]]
    assert dialog.source.currentData() == "mk64"
    dialog.rom[1].setText(str(other))
    dialog.save()
    assert dialog.notice.level == "error" and "not Mario Kart 64" in dialog.notice.text()
    assert json.loads(settings_path().read_text())["rom_path"] == str(mk)
    # the game's name in sessions is what the ROM is
    test_rom = tmp_path / "test.z64"
    test_rom.write_bytes(testrom.build_rom(b""))
    window.settings.rom_path = str(test_rom)
    window.game.make_backend("mk64")
    window.game.source = "mk64"
    assert window.game.game_name() == "kartstudio-test"
    window.close()


def test_the_emulator_setting_is_used_and_doctor_reads_the_settings(tmp_path):
    from kartstudio.doctor import run_checks
    from kartstudio.emulator.launcher import EmulatorProcess, LaunchOptions

    mk = header_rom(tmp_path / "mk.z64")
    save_settings(Settings(rom_path=str(mk), emulator=str(tmp_path / "no-such-mupen64plus")))
    checks = {c.name: c for c in run_checks()}
    assert checks["settings"].ok and str(settings_path()) in checks["settings"].detail
    assert not checks["emulator"].ok and "no-such-mupen64plus" in checks["emulator"].detail
    assert checks["ROM"].ok and "mk.z64" in checks["ROM"].detail  # the ROM the app will play
    process = EmulatorProcess(LaunchOptions(mk, input_plugin="dummy", emulator=tmp_path / "no-such-mupen64plus"))
    process.workdir = tmp_path
    with pytest.raises(KartStudioError, match="'emulator' setting"):
        process.command()


def test_the_no_rom_banner_hides_while_racing(qtbot):
    pytest.importorskip("pytestqt")
    from kartstudio.gui.main_window import NO_ROM_TEXT, MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.notice.text() == NO_ROM_TEXT
    assert window.start_game()
    qtbot.waitUntil(lambda: window.game.loop is not None and window.game.loop.status.running, timeout=60_000)
    qtbot.waitUntil(lambda: window.notice.text() != NO_ROM_TEXT, timeout=5_000)
    window.stop_game()
    window.close()
