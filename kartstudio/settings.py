"""The user's settings, kept as JSON in the platform's config folder (see kartstudio.paths).

Qt-free on purpose: the CLI, the engine and the GUI's settings dialog all read the same file.
A missing file means defaults; a damaged one (bad JSON, a value of the wrong type) is set aside
as settings.json.bad and also gives defaults, plus a message saying so, so the app still starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kartstudio import paths
from kartstudio.configfile import need, read_json_config
from kartstudio.errors import KartStudioError

SETTINGS_FILE = "settings.json"
GAME_SOURCES = ("practice", "mk64", "raceway")  # raceway: KartStudio Raceway, built from source
FRAME_CODECS = ("lossless", "jpeg")  # kartstudio.session.CODECS (not imported: it pulls in h5py)  # the practice track (CarRacing) or Mario Kart 64 in mupen64plus
# mupen64plus video plugins that render under Mesa software GL here (docs: reference facts).
# "auto": the plugin that draws the ROM's game (kartstudio.emulator.launcher.video_for).
VIDEO_PLUGINS = (
    "auto",
    "mupen64plus-video-rice",
    "mupen64plus-video-glide64mk2",
    "mupen64plus-video-arachnoid",
    "mupen64plus-video-z64",
)


class SettingsError(KartStudioError):
    """A setting with a value KartStudio cannot use."""


# settings holding a path a person typed (``~`` allowed): what to call each in a message
USER_PATHS = {"data_folder": "the data folder", "rom_path": "the ROM path", "emulator": "the emulator program"}


@dataclass
class Settings:
    game_source: str = "practice"
    rom_path: str = ""  # the user's own Mario Kart 64 ROM; never shipped with KartStudio
    # the mupen64plus program; the plain name means: found on PATH or in /usr/games at each start
    emulator: str = "mupen64plus"
    video_plugin: str = VIDEO_PLUGINS[0]
    storage_size: tuple[int, int] = (120, 320)  # (height, width) of each stored seat frame
    data_folder: str = field(default_factory=lambda: str(paths.data_dir()))
    practice_seed: int = 7
    raceway_track: int = 0  # the KartStudio Raceway track (0-999) the menu macro races on
    # how recorded frames are stored: "lossless" (gzip) or "jpeg" (about 3x smaller; kartstudio.session.CODECS)
    frames_codec: str = "lossless"
    jpeg_quality: int = 90
    problem: str = field(default="", compare=False)  # why the file could not be read, if so

    # -- derived folders -------------------------------------------------------------------------
    @property
    def sessions_folder(self) -> Path:
        return paths.user_path(self.data_folder, "the data folder", SettingsError) / "sessions"

    @property
    def models_folder(self) -> Path:
        return paths.user_path(self.data_folder, "the data folder", SettingsError) / "models"

    @property
    def has_rom(self) -> bool:
        try:
            return bool(self.rom_path) and paths.user_path(self.rom_path).is_file()
        except KartStudioError:
            return False

    def validate(self) -> None:
        """Raise SettingsError naming the first unusable setting."""
        if self.game_source not in GAME_SOURCES:
            raise SettingsError(f"game source {self.game_source!r} is unknown; choose one of {', '.join(GAME_SOURCES)}")
        h, w = self.storage_size
        if not (16 <= h <= 480 and 16 <= w <= 640):
            raise SettingsError(f"storage size {h}x{w} (height x width) is out of range; use 16..480 x 16..640")
        if self.video_plugin not in VIDEO_PLUGINS:
            raise SettingsError(f"video plugin {self.video_plugin!r} is unknown; choose one of {', '.join(VIDEO_PLUGINS)}")
        if not str(self.data_folder).strip():
            raise SettingsError("the data folder is empty; choose a folder for sessions and models")
        for name in USER_PATHS:  # '~nosuchuser/x' would stop every later start
            if getattr(self, name):
                paths.user_path(getattr(self, name), USER_PATHS[name], SettingsError)
        if type(self.raceway_track) is not int or not 0 <= self.raceway_track <= 999:
            raise SettingsError(f"Raceway track {self.raceway_track!r} is out of range; choose a number 0..999")
        if self.frames_codec not in FRAME_CODECS:
            raise SettingsError(f"frames codec {self.frames_codec!r} is unknown; choose one of {', '.join(FRAME_CODECS)}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise SettingsError(f"JPEG quality {self.jpeg_quality} is out of range; use 1..100 (90 is the default)")
        if self.rom_path:
            from kartstudio.emulator.rom import require_game_rom

            try:
                require_game_rom(self.rom_path)  # the same check as 'Choose ROM…' and starting the game
            except KartStudioError as exc:
                raise SettingsError(str(exc)) from None

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("problem")
        data["storage_size"] = list(self.storage_size)
        return data


def settings_path() -> Path:
    return paths.config_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The saved settings, or defaults (with .problem set when the file was bad: it is set aside)."""
    path = Path(path) if path else settings_path()
    problems: list[str] = []
    values = read_json_config(path, _checked_values, "the settings file", problems.append)
    if values is None:
        return Settings(problem=problems[0] if problems else "")
    for name, what in USER_PATHS.items():  # an unusable path is left out (its default used), and said once
        if name in values:
            try:
                paths.user_path(values[name], what)
            except KartStudioError as exc:
                del values[name]
                problems.append(f"{exc}; the settings file {path} keeps it, but the default is used until you "
                                "choose another in Settings")
    return Settings(**values, problem=" ".join(problems))


def _checked_values(data) -> dict:
    """The known settings in a settings.json, each checked for type (values are checked on save)."""
    need(isinstance(data, dict), "it is not a JSON object")
    kinds = {f.name for f in fields(Settings)}
    values = {}
    for name, value in data.items():
        if name not in kinds or name == "problem":
            continue  # a newer version's setting, or a stray key: ignored
        if name == "storage_size":
            need(isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value),
                 f"storage_size is {value!r}; expected [height, width]")
            need(16 <= value[0] <= 480 and 16 <= value[1] <= 640, f"storage_size {value!r} is out of range")
            value = tuple(value)
        elif name == "practice_seed":
            need(type(value) is int, f"practice_seed is {value!r}; expected a whole number")
        elif name == "raceway_track":
            need(type(value) is int and 0 <= value <= 999, f"raceway_track is {value!r}; expected a whole number 0..999")
        elif name == "jpeg_quality":
            need(type(value) is int and 1 <= value <= 100, f"jpeg_quality is {value!r}; expected a whole number 1..100")
        else:
            need(isinstance(value, str), f"{name} is {value!r}; expected text")
        values[name] = value
    need(values.get("game_source", "practice") in GAME_SOURCES,
         f"game_source is {values.get('game_source')!r}; expected one of {', '.join(GAME_SOURCES)}")
    need(values.get("video_plugin", VIDEO_PLUGINS[0]) in VIDEO_PLUGINS,
         f"video_plugin is {values.get('video_plugin')!r}; expected one of {', '.join(VIDEO_PLUGINS)}")
    need(str(values.get("data_folder", "x")).strip() != "", "data_folder is empty")
    need(values.get("frames_codec", "lossless") in FRAME_CODECS,
         f"frames_codec is {values.get('frames_codec')!r}; expected one of {', '.join(FRAME_CODECS)}")
    return values


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Validate and write atomically (a crash mid-save never leaves a half-written file)."""
    settings.validate()
    path = Path(path) if path else settings_path()
    try:
        paths.write_json(path, settings.to_json())
    except OSError as exc:
        raise SettingsError(f"cannot save settings to {path}: {exc.strerror or exc}") from None
    settings.problem = ""
    return path
