"""The Settings dialog: edits kartstudio.settings.Settings and saves it (validated) as JSON."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtWidgets

from kartstudio.errors import KartStudioError
from kartstudio.gui.common import Notice
from kartstudio.paths import user_path
from kartstudio.gui.game_controller import SOURCE_LABELS
from kartstudio.settings import FRAME_CODECS, GAME_SOURCES, VIDEO_PLUGINS, Settings, SettingsError, save_settings, settings_path


class SettingsDialog(QtWidgets.QDialog):
    def __init__(self, settings: Settings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("KartStudio settings")
        self.setMinimumWidth(560)
        form = QtWidgets.QFormLayout()
        self.rom = self._path_row(settings.rom_path, "Choose your Mario Kart 64 ROM", "N64 ROMs (*.z64 *.n64 *.v64);;All files (*)")
        form.addRow("Mario Kart 64 ROM", self.rom[0])
        self.emulator = self._path_row(settings.emulator, "Choose the mupen64plus program", "All files (*)")
        form.addRow("Emulator (mupen64plus)", self.emulator[0])
        self.video = QtWidgets.QComboBox()
        for plugin in VIDEO_PLUGINS:
            self.video.addItem("automatic: the one that draws the game" if plugin == "auto" else plugin, plugin)
        self.video.setCurrentIndex(max(0, self.video.findData(settings.video_plugin)))
        self.video.setToolTip("automatic: rice for Mario Kart 64, glide64mk2 for KartStudio's own ROMs (rice "
                              "leaves them black). Used from the next game start.")
        form.addRow("Video plugin", self.video)
        size = QtWidgets.QHBoxLayout()
        self.height_box = QtWidgets.QSpinBox()
        self.height_box.setRange(16, 480)
        self.height_box.setValue(settings.storage_size[0])
        self.width_box = QtWidgets.QSpinBox()
        self.width_box.setRange(16, 640)
        self.width_box.setValue(settings.storage_size[1])
        size.addWidget(self.width_box)
        size.addWidget(QtWidgets.QLabel("wide ×"))
        size.addWidget(self.height_box)
        size.addWidget(QtWidgets.QLabel("high (pixels per stored seat frame)"))
        form.addRow("Storage size", size)
        codec = QtWidgets.QHBoxLayout()
        self.codec = QtWidgets.QComboBox()
        self.codec.addItems(FRAME_CODECS)
        self.codec.setCurrentText(settings.frames_codec)
        self.codec.setToolTip("lossless: exact pixels (gzip, ~34 KiB per seat frame); "
                              "jpeg: about 3x smaller (~10.5 KiB at quality 90), for long-term recording")
        codec.addWidget(self.codec)
        codec.addWidget(QtWidgets.QLabel("JPEG quality"))
        self.quality = QtWidgets.QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(settings.jpeg_quality)
        codec.addWidget(self.quality)
        codec.addStretch(1)
        form.addRow("Store frames as", codec)
        self.data = self._path_row(settings.data_folder, "Choose the data folder", None)
        form.addRow("Data folder", self.data[0])
        self.source = QtWidgets.QComboBox()
        for key in GAME_SOURCES:  # shown by name, kept by key
            self.source.addItem(SOURCE_LABELS.get(key, key), key)
        self.source.setCurrentIndex(max(0, self.source.findData(settings.game_source)))
        form.addRow("Game source", self.source)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(settings.practice_seed)
        form.addRow("Practice track seed", self.seed)
        self.raceway_track = QtWidgets.QSpinBox()
        self.raceway_track.setRange(0, 999)
        self.raceway_track.setValue(settings.raceway_track)
        form.addRow("Raceway track", self.raceway_track)
        v = QtWidgets.QVBoxLayout(self)
        v.addLayout(form)
        v.addWidget(QtWidgets.QLabel(f"Saved in {settings_path()}"))
        self.notice = Notice()
        v.addWidget(self.notice)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Save | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        v.addWidget(buttons)

    def _path_row(self, value: str, title: str, filters: str | None):
        box = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        edit = QtWidgets.QLineEdit(value)
        row.addWidget(edit, 1)
        browse = QtWidgets.QPushButton("Browse…")

        def pick() -> None:
            try:
                start = str(user_path(edit.text()).parent if edit.text() else Path.home())
            except KartStudioError:  # '~nosuchuser/...': browse from home; saving names the problem
                start = str(Path.home())
            if filters is None:
                chosen = QtWidgets.QFileDialog.getExistingDirectory(self, title, edit.text() or start)
            else:
                chosen, _ = QtWidgets.QFileDialog.getOpenFileName(self, title, start, filters)
            if chosen:
                edit.setText(chosen)

        browse.clicked.connect(pick)
        row.addWidget(browse)
        return box, edit

    def values(self) -> Settings:
        return Settings(
            game_source=self.source.currentData(),
            rom_path=self.rom[1].text().strip(),
            emulator=self.emulator[1].text().strip(),
            video_plugin=self.video.currentData(),
            storage_size=(self.height_box.value(), self.width_box.value()),
            data_folder=self.data[1].text().strip(),
            practice_seed=self.seed.value(),
            raceway_track=self.raceway_track.value(),
            frames_codec=self.codec.currentText(),
            jpeg_quality=self.quality.value(),
        )

    def save(self) -> None:
        new = self.values()
        if new.game_source == "mk64" and not new.rom_path:
            self.notice.show_message("Mario Kart 64 needs a ROM: choose it above, or pick the practice source.", "error")
            return
        try:
            save_settings(new)
        except SettingsError as exc:
            self.notice.show_message(str(exc), "error")
            return
        for name in ("game_source", "rom_path", "emulator", "video_plugin", "storage_size", "data_folder", "practice_seed",
                     "raceway_track", "frames_codec", "jpeg_quality"):
            setattr(self.settings, name, getattr(new, name))
        self.settings.problem = ""
        self.accept()
