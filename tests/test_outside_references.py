"""Nothing outside a file is read or written through it (issue 18, item 1).

HDF5 follows external storage, external links and virtual datasets on its own. Each is planted
here in a real session or model file, pointing at a file outside it, and every way in (info, the
Datasets list, training, trimming, import-model, loading a model) must refuse it in one line and
leave the outside file as it was. The strongest "not read" proof: the outside file is a FIFO, so
any attempt to open it for reading would block; the reader runs in a subprocess with a timeout.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from kartstudio.cli import main
from kartstudio.errors import KartStudioError, SessionFileError
from kartstudio.session import open_session, set_excluded
from test_hostile import make_session, one_line

REPO = Path(__file__).resolve().parents[1]


def _fingerprint(path: Path) -> tuple:
    st = path.stat()
    return (path.read_bytes(), st.st_size, st.st_mtime_ns)


@pytest.fixture
def outside(tmp_path):
    """A folder outside the sessions' folder, holding an HDF5 file and a raw file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    with h5py.File(folder / "research.h5", "w") as f:
        f["pairs"] = np.arange(2000, dtype=np.int64).reshape(1000, 2)
        f["stamps"] = np.linspace(0, 1, 12)
    (folder / "secret.txt").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 400)
    return folder


def _plant(kind: str, session: Path, outside: Path) -> None:
    """Replace a dataset of `session` by one that points into `outside`."""
    with h5py.File(session, "a") as f:
        if kind == "external storage":
            del f["frames"]
            f.create_dataset("frames", (6, 24, 32, 3), "u1", external=[(str(outside / "secret.txt"), 0, h5py.h5f.UNLIMITED)])
        elif kind == "external link":
            del f["excluded"]
            f["excluded"] = h5py.ExternalLink(str(outside / "research.h5"), "/pairs")
        elif kind == "virtual dataset":
            layout = h5py.VirtualLayout(shape=(6,), dtype="f8")
            layout[:] = h5py.VirtualSource(str(outside / "research.h5"), "stamps", shape=(12,))[:6]
            del f["timestamps"]
            f.create_virtual_dataset("timestamps", layout)
        elif kind == "filter plugin":
            del f["actions"]
            f.create_dataset("actions", data=np.zeros((6, 5), np.float32), chunks=(6, 5), compression=32001,
                             allow_unknown_filter=True)
        else:
            raise AssertionError(kind)


KINDS = ("external storage", "external link", "virtual dataset", "filter plugin")


@pytest.mark.parametrize("kind", KINDS)
def test_every_reader_refuses_a_session_pointing_outside_and_changes_nothing(tmp_path, outside, kind, capsys):
    from kartstudio.session import session_rows
    from kartstudio.training.dataset import SessionDataset

    sessions = tmp_path / "sessions"
    sessions.mkdir()
    path = make_session(sessions / "s.h5")
    _plant(kind, path, outside)
    before = {p.name: _fingerprint(p) for p in outside.iterdir()}

    with pytest.raises(SessionFileError, match="outside itself") as err:
        open_session(path)
    assert "\n" not in str(err.value) and "s.h5" in str(err.value)
    assert main(["info", str(path)]) == 2
    assert "outside itself" in one_line(capsys.readouterr().err)
    rows = session_rows(sessions)
    assert len(rows) == 1 and "outside itself" in rows[0]["problem"]
    with pytest.raises(KartStudioError, match="outside itself"):
        SessionDataset([path], batch_size=2)
    with pytest.raises(SessionFileError, match="outside itself"):  # trimming writes: refused before a write
        set_excluded(path, [(0, 2)])
    assert {p.name: _fingerprint(p) for p in outside.iterdir()} == before


def test_trimming_through_an_external_link_never_rewrites_the_outside_file(tmp_path, outside):
    """The red team's case: "Exclude to here" rewrote the outside file's (1000, 2) dataset to (1, 2)."""
    path = make_session(tmp_path / "s.h5")
    _plant("external link", path, outside)
    with pytest.raises(SessionFileError):
        set_excluded(path, [(0, 1)])
    with h5py.File(outside / "research.h5", "r") as f:
        assert f["pairs"].shape == (1000, 2) and f["pairs"][999, 1] == 1999


def test_external_storage_is_never_opened_even_when_the_target_would_block(tmp_path):
    """The outside "file" is a FIFO: reading it would block forever. Every reader must return at once."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = make_session(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        del f["frames"]
        f.create_dataset("frames", (6, 24, 32, 3), "u1", external=[(str(fifo), 0, h5py.h5f.UNLIMITED)])
    code = textwrap.dedent(f"""
        import sys
        from kartstudio.cli import main
        from kartstudio.session import open_session
        from kartstudio.training.dataset import SessionDataset
        codes = [main(["info", {str(path)!r}]), main(["info", "--json", {str(path)!r}])]
        for attempt in (lambda: open_session({str(path)!r}).frame(0), lambda: SessionDataset([{str(path)!r}])):
            try:
                attempt()
                codes.append(0)
            except Exception as exc:
                codes.append(type(exc).__name__)
        print(codes)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[2, 2, 'SessionFileError', 'SessionFileError']"
    assert "Traceback" not in run.stderr


# -- models -----------------------------------------------------------------------------------------


def _tensorkart_weights(path: Path, tweak=None) -> Path:
    """TensorKart's model_weights.h5 layout (Keras 2 save_weights) with the real network's shapes."""
    from kartstudio.model import build_tensorkart

    model = build_tensorkart()
    with h5py.File(path, "w") as f:
        layers = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, layer.weights):
                g.create_dataset(n, data=np.asarray(w))
        if tweak:
            tweak(f, layers[0].name)
    return path


def test_import_model_never_copies_bytes_from_outside_into_the_new_model(tmp_path, outside, capsys):
    def external(f, first):
        name = f"{first}/kernel:0"
        shape = f[first][name].shape
        del f[first][name]
        f[first].create_dataset(name, shape, "f4", external=[(str(outside / "secret.txt"), 0, h5py.h5f.UNLIMITED)])

    weights = _tensorkart_weights(tmp_path / "model_weights.h5", external)
    out = tmp_path / "out.keras"
    assert main(["import-model", str(weights), "-o", str(out)]) == 2
    assert "secret.txt" in one_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30])
def test_import_model_refuses_weights_that_cannot_drive(tmp_path, value, capsys):
    def poison(f, first):
        ds = f[first][f"{first}/kernel:0"]
        data = ds[()]
        data.flat[7] = value
        ds[...] = data

    weights = _tensorkart_weights(tmp_path / "model_weights.h5", poison)
    out = tmp_path / "out.keras"
    assert main(["import-model", str(weights), "-o", str(out)]) == 2
    assert "cannot drive" in one_line(capsys.readouterr().err)
    assert not out.exists()


def _rewrite_keras(src: Path, dst: Path, change) -> Path:
    """A copy of a .keras archive whose model.weights.h5 went through `change(h5py.File)`."""
    with zipfile.ZipFile(src) as archive:
        members = {m: archive.read(m) for m in archive.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "a") as f:
        change(f)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dst


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from kartstudio.model import build_model, save_model

    return save_model(build_model("kartstudio"), tmp_path_factory.mktemp("model") / "good.keras")


def _first_kernel(f: h5py.File) -> str:
    found = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 4 else None)
    return found[0]


def test_loading_a_model_whose_weights_live_outside_is_refused(tmp_path, outside, saved_model):
    from kartstudio.model import ModelFileError, load_model

    def external(f):
        name = _first_kernel(f)
        shape, dtype = f[name].shape, f[name].dtype
        del f[name]
        f.create_dataset(name, shape, dtype, external=[(str(outside / "secret.txt"), 0, h5py.h5f.UNLIMITED)])

    def link(f):
        name = _first_kernel(f)
        del f[name]
        f[name] = h5py.ExternalLink(str(outside / "research.h5"), "/pairs")

    before = {p.name: _fingerprint(p) for p in outside.iterdir()}
    for change in (external, link):
        bad = _rewrite_keras(saved_model, tmp_path / f"{change.__name__}.keras", change)
        with pytest.raises(ModelFileError, match="outside itself"):
            load_model(bad)
    assert {p.name: _fingerprint(p) for p in outside.iterdir()} == before


def test_loading_a_model_with_nan_weights_is_one_line(tmp_path, saved_model, capsys):
    from kartstudio.model import ModelFileError, load_model

    def poison(f):
        ds = f[_first_kernel(f)]
        data = ds[()]
        data.flat[0] = np.nan
        ds[...] = data

    bad = _rewrite_keras(saved_model, tmp_path / "nan.keras", poison)
    with pytest.raises(ModelFileError, match="not numbers"):
        load_model(bad)
    assert load_model(saved_model) is not None  # the untouched file still loads


# -- sizes a file claims (items 9 and 10) ------------------------------------------------------------


def _served_frames(path: Path):
    from kartstudio.training.dataset import SessionDataset

    with SessionDataset([path], batch_size=2, shuffle=False) as ds:
        return ds._frames(np.arange(ds.frames))


def test_a_frame_chunk_of_the_wrong_size_is_one_line_in_training(tmp_path):
    import zlib

    path = make_session(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        f["frames"].id.write_direct_chunk((3, 0, 0, 0), zlib.compress(np.zeros((12, 32, 3), np.uint8).tobytes()))
    with pytest.raises(SessionFileError, match="frame 3 holds 1152 bytes"):
        _served_frames(path)


def test_a_zip_bomb_frame_is_refused_without_inflating_it(tmp_path):
    """A 200 MB stream of zeros in one frame's chunk: refused after inflating one frame's bytes."""
    import zlib

    path = make_session(tmp_path / "s.h5")
    bomb = zlib.compressobj(9)
    data = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(200)) + bomb.flush()
    with h5py.File(path, "a") as f:
        f["frames"].id.write_direct_chunk((1, 0, 0, 0), data)
    code = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_outside_references import _served_frames
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            _served_frames(Path({str(path)!r}))
        except Exception as exc:
            print(type(exc).__name__, exc)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = run.stdout.strip().splitlines()
    assert lines[-2].startswith("SessionFileError") and "frame 1 holds more than 2304 bytes" in lines[-2], run.stdout + run.stderr
    assert int(lines[-1]) < 100, f"peak RSS grew by {lines[-1]} MB reading a bomb"  # 200 MB if inflated
    with open_session(path) as s:  # the Datasets tab's way in: one line too, and the other frames still show
        with pytest.raises(SessionFileError, match="frame 1 holds more than 2304 bytes"):
            s.frame(1)
        assert s.frame(2).shape == (24, 32, 3)


def test_a_huge_jpeg_frame_is_refused_from_its_header(tmp_path):
    from PIL import Image

    from kartstudio.session import SessionMeta, SessionWriter, decode_jpeg

    buffer = io.BytesIO()
    Image.new("RGB", (6000, 6000), (9, 9, 9)).save(buffer, "JPEG", quality=50)
    code = textwrap.dedent(f"""
        import resource, sys
        from kartstudio.session import decode_jpeg
        data = open({str(tmp_path / 'big.jpg')!r}, 'rb').read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_jpeg(data, (24, 32, 3))
        except ValueError as exc:
            print(exc)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    (tmp_path / "big.jpg").write_bytes(buffer.getvalue())
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = run.stdout.strip().splitlines()
    assert lines[-2] == "a JPEG of 6000x6000, expected 32x24", run.stdout + run.stderr
    assert int(lines[-1]) < 50, f"peak RSS grew by {lines[-1]} MB: the 108 MB picture was decoded"
    # and through a session, one line naming the frame
    path = tmp_path / "j.h5"
    with SessionWriter(path, SessionMeta(storage_size=(24, 32), codec="jpeg")) as w:
        from kartstudio.controller import ControllerState

        for i in range(3):
            w.append_encoded(buffer.getvalue() if i == 1 else _small_jpeg(), ControllerState(), 1.0 + i, i)
    with open_session(path) as s, pytest.raises(SessionFileError, match="frame 1 is a JPEG of 6000x6000"):
        s.frame(1)
    assert decode_jpeg(_small_jpeg(), (24, 32, 3)).shape == (24, 32, 3)


def _small_jpeg() -> bytes:
    from kartstudio.session import encode_frame

    return encode_frame(np.full((24, 32, 3), 80, np.uint8), "jpeg")


def test_a_model_claiming_a_huge_frame_history_is_refused(tmp_path, saved_model):
    """The Pilot would allocate that many frames per step; the file is refused on load instead."""
    import json

    from kartstudio.model import ModelFileError, load_model

    with zipfile.ZipFile(saved_model) as archive:
        members = {m: archive.read(m) for m in archive.namelist()}
    config = json.loads(members["config.json"])
    layers = config["config"]["layers"]
    next(layer for layer in layers if layer["config"]["name"] == "preprocess")["config"]["history"] = 1_000_000
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "history.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="frame history of 1000000"):
        load_model(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_trim_leaves_the_session_file_itself_untouched(tmp_path, outside, kind):
    path = make_session(tmp_path / "s.h5")
    _plant(kind, path, outside)
    before = _fingerprint(path)
    with pytest.raises(SessionFileError, match="outside itself"):
        set_excluded(path, [(0, 2)])
    assert _fingerprint(path) == before


# -- blocks HDF5 would loop on ------------------------------------------------------------------------


def _jpeg_session(path: Path, frames: int = 12) -> Path:
    """Noisy 120x160 frames: about 20 KB of JPEG each, so each sits in a heap block of its own."""
    from kartstudio.controller import ControllerState
    from kartstudio.session import SessionMeta, SessionWriter

    rng = np.random.default_rng(3)
    with SessionWriter(path, SessionMeta(storage_size=(120, 160), codec="jpeg")) as w:
        for i in range(frames):
            w.append(rng.integers(0, 255, (120, 160, 3), np.uint8), ControllerState(), 1.0 + i / 30, i)
    return path


def _zero_first_object(path: Path, collection: int) -> None:
    """Zero the first object header of the global heap collection at byte `collection`: HDF5 then
    reads free space of 0 bytes there and loops forever parsing it."""
    data = bytearray(path.read_bytes())
    assert data[collection:collection + 4] == b"GCOL"
    data[collection + 16:collection + 32] = bytes(16)
    path.write_bytes(bytes(data))


def _opens_and_reads_every_frame(path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from kartstudio.cli import main
        from kartstudio.session import open_session
        from kartstudio.errors import SessionFileError
        print("info", main(["info", {str(path)!r}]))
        try:
            with open_session({str(path)!r}) as s:
                for i in range(len(s)):
                    try:
                        s.frame(i)
                    except SessionFileError as exc:
                        print("frame", i, exc)
        except SessionFileError as exc:
            print("open", exc)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_a_broken_block_of_text_attributes_is_refused_not_looped_on(tmp_path):
    path = make_session(tmp_path / "s.h5")
    _zero_first_object(path, path.read_bytes().find(b"GCOL"))
    run = _opens_and_reads_every_frame(path)  # before: HDF5 looped forever reading the format attribute
    assert "info 2" in run.stdout and "text attributes" in run.stdout and "Traceback" not in run.stderr, run


def test_a_broken_block_of_jpeg_bytes_is_one_frame_refused_not_looped_on(tmp_path):
    path = _jpeg_session(tmp_path / "j.h5")
    with h5py.File(path, "r") as f:
        ds = f["frames"]
        info = ds.id.get_chunk_info_by_coord((0,))
    data = path.read_bytes()
    address = int.from_bytes(data[info.byte_offset + 5 * 16 + 4:info.byte_offset + 5 * 16 + 12], "little")
    _zero_first_object(path, address)  # the collection holding frame 5
    run = _opens_and_reads_every_frame(path)
    lines = run.stdout.strip().splitlines()
    assert "info 0" in lines and "Traceback" not in run.stderr, run  # the file opens: one frame is damaged
    refused = [line for line in lines if line.startswith("frame ")]
    assert refused and all("damaged block" in line for line in refused), lines
    assert any(line.startswith("frame 5 ") for line in refused) and len(refused) < 12, lines  # the rest still show
