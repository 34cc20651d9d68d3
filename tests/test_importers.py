import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from kartstudio.errors import KartStudioError
from kartstudio.importers import import_tensorkart_arrays, import_tensorkart_folders
from kartstudio.session import open_session


def _screenshot(color, size=(640, 480)):
    """A two-coloured screenshot: `color` on the top half, a red shade on the bottom half."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = color
    img[h // 2 :] = (255 - color[0], 0, 0)
    return img


def _png(path, image):
    Image.fromarray(image).save(path)


def _tensorkart_folder(root, n=6, absolute_from_elsewhere=False, size=(640, 480), header=False, values=None):
    """A folder as TensorKart's record.py leaves it: img_<t>.png and data.csv."""
    root.mkdir()
    lines = ["image_path,x,y,a,b,rb"] if header else []
    for t in range(n):
        _png(root / f"img_{t}.png", _screenshot((10 * t, 100, 200), size))
        name = f"/home/someone/TensorKart/samples/2017-03-01_10:00:00/img_{t}.png" if absolute_from_elsewhere \
            else f"samples/2017-03-01_10:00:00/img_{t}.png"
        x = values[t] if values is not None else (t - 3) / 4
        lines.append(f"{name},{x},{0.1},{t % 2},{0},{1 if t == 4 else 0}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root


# -- layouts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 480), (800, 600)])
def test_whole_screen_is_the_default_for_4_3_screenshots(tmp_path, size):
    folder = _tensorkart_folder(tmp_path / "rec", absolute_from_elsewhere=True, size=size)
    report = import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert report.frames == 6 and not report.skipped and report.layout == "whole"
    with open_session(tmp_path / "out.h5") as s:
        assert len(s) == 6 and s.frames.shape[1:] == (240, 320, 3)
        assert s.layout == "whole" and s.meta.capture_region == (0, 0, 640, 480)
        frame = s.frame(2)
        assert tuple(frame[60, 160]) == (20, 100, 200)  # the top half of the screen...
        assert tuple(frame[180, 160]) == (235, 0, 0)  # ...and the bottom half are both kept
        assert s.meta.source == "tensorkart-record" and s.meta.fps == 5.0


@pytest.mark.parametrize("seat", [1, 2])
def test_seat_of_a_split_screen(tmp_path, seat):
    folder = _tensorkart_folder(tmp_path / "rec")
    report = import_tensorkart_folders([folder], tmp_path / "out.h5", seat=seat)
    assert report.layout == "seat"
    with open_session(tmp_path / "out.h5") as s:
        assert s.frames.shape[1:] == (120, 320, 3) and s.layout == "seat" and s.meta.seat == seat
        assert s.meta.capture_region == ((0, 0, 640, 240) if seat == 1 else (0, 240, 640, 240))
        assert tuple(s.frame(2)[60, 160]) == ((20, 100, 200) if seat == 1 else (235, 0, 0))


def test_half_height_frames_are_one_seat_as_they_are(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", size=(640, 240))
    import_tensorkart_folders([folder], tmp_path / "out.h5")
    with open_session(tmp_path / "out.h5") as s:
        assert s.layout == "seat" and s.meta.seat == 1 and s.frames.shape[1:] == (120, 320, 3)
        assert tuple(s.frame(3)[30, 160]) == (30, 100, 200) and tuple(s.frame(3)[90, 160]) == (225, 0, 0)


def test_older_joystick_csv_layout_with_info_txt(tmp_path):
    folder = tmp_path / "2013"
    folder.mkdir()
    rows = []
    for t in range(20, 30):
        _png(folder / f"img_{t}.png", _screenshot((t, 50, 60), (800, 600)))
        rows.append(f"{t},{(t - 25) / 10},-0.25,1,0,{t % 2}")
    (folder / "joystick.csv").write_text("\n".join(rows) + "\n")
    (folder / "info.txt").write_text("luigi raceway, first lap\n22\n27\n")
    report = import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert report.frames == 6 and report.unused_rows == 4
    with open_session(tmp_path / "out.h5") as s:
        assert s.meta.source == "tensorkart-joystick" and s.layout == "whole"
        assert np.array_equal(s.actions[:, 0], np.float32([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2]))
        assert tuple(s.frame(0)[10, 10]) == (22, 50, 60)


# -- labels, fps -------------------------------------------------------------------------------------


def test_labels_are_kept_exactly_and_states_are_quantized(tmp_path):
    values = [0.29364, -0.99997, 0.0001, 1.0, -0.5123, 0.77777]
    folder = _tensorkart_folder(tmp_path / "rec", values=values)
    import_tensorkart_folders([folder], tmp_path / "out.h5")
    with open_session(tmp_path / "out.h5") as s:
        assert s.actions.dtype == np.float32
        assert np.array_equal(s.actions[:, 0], np.float32(values))
        assert s.actions[4, 4] == 1.0 and s.actions[1, 2] == 1.0
        assert [s.state(i).x for i in range(6)] == [round(v * 80) for v in values]


def test_import_npy_keeps_labels_and_fps(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (20, 66, 200, 3), dtype=np.uint8)
    y = np.zeros((20, 5), np.float64)
    y[:, 0] = np.linspace(-1, 1, 20) * 0.987654
    y[::3, 2] = 1
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    report = import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")
    assert "uint8" in report.note
    with open_session(tmp_path / "out.h5") as s:
        assert s.frames.shape == (20, 66, 200, 3) and np.array_equal(s.frames[7], X[7])
        assert np.array_equal(s.actions[:], y.astype(np.float32))
        assert s.state(19).x == 79 and s.layout == "whole" and s.meta.fps == 5.0
        assert s.duration == pytest.approx(19 * 0.2)  # TensorKart sampled every 200 ms
    import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "fast.h5", fps=10)
    with open_session(tmp_path / "fast.h5") as s:
        assert s.meta.fps == 10 and s.duration == pytest.approx(1.9)


def test_import_npy_float_0_to_1(tmp_path):
    X = np.random.default_rng(1).random((4, 66, 200, 3))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.zeros((4, 5)))
    report = import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")
    assert "0..1" in report.note
    with open_session(tmp_path / "out.h5") as s:
        assert np.abs(s.frames[2].astype(int) - np.round(X[2] * 255)).max() <= 1


def test_import_npy_mismatch(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((5, 66, 200, 3), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(KartStudioError, match="5 frames but .* 4 labels"):
        import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("x, message", [
    (np.array(["a", "b"]), "<U1 values"),
    (np.zeros((2, 66, 200, 3), dtype=[("r", "u1")]), "values"),
    (np.zeros((2, 0, 200, 3), np.uint8), "200x0 pixels"),
    (np.zeros((2, 66, 200, 3), bool), "bool values"),
])
def test_import_npy_bad_arrays_are_one_line(tmp_path, x, message):
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", np.zeros((2, 5)))
    with pytest.raises(KartStudioError, match=message) as err:
        import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")
    assert "\n" not in str(err.value) and not (tmp_path / "out.h5").exists()


# -- bad rows --------------------------------------------------------------------------------------


def test_header_line_is_recognised(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", header=True)
    report = import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert report.frames == 6 and report.header_lines == 1 and not report.skipped


def test_bad_row_is_named_with_file_and_line(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    with open(folder / "data.csv", "a") as fh:
        fh.write("img_1.png,0.5,zero,1,0,0\n")
    with pytest.raises(KartStudioError, match=r"data.csv line 7: .*--skip-bad"):
        import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()  # no half-written output left behind
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]  # nor a temporary file


def test_missing_image_and_skip_bad(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    (folder / "img_2.png").unlink()
    (folder / "img_3.png").write_bytes(b"not a png")
    with pytest.raises(KartStudioError, match="line 3: image img_2.png not found"):
        import_tensorkart_folders([folder], tmp_path / "out.h5")
    report = import_tensorkart_folders([folder], tmp_path / "out2.h5", skip_bad=True)
    assert report.frames == 4 and report.skipped_rows == 2
    assert "line 4" in report.skipped[1] and "img_3.png" in report.skipped[1]


def test_image_paths_never_lead_outside_the_folder(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    outside = tmp_path / "secret.png"
    _png(outside, _screenshot((1, 2, 3)))
    with open(folder / "data.csv", "a") as fh:
        fh.write("../secret.png,0,0,0,0,0\n")  # only the name counts: rec/secret.png does not exist
        fh.write(f"{outside},0,0,0,0,0\n")
        fh.write("..\\..\\img_1.png,0.5,0,0,0,0\n")  # a Windows path: rec/img_1.png is used
    report = import_tensorkart_folders([folder], tmp_path / "out.h5", skip_bad=True)
    assert report.frames == 3 and report.skipped_rows == 2
    assert all("secret.png not found in" in line for line in report.skipped)
    with open_session(tmp_path / "out.h5") as s:
        assert tuple(s.frame(2)[10, 10]) == (10, 100, 200)


def test_an_import_of_zero_frames_writes_nothing(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=3)
    for png in folder.glob("*.png"):
        png.unlink()
    with pytest.raises(KartStudioError, match=r"nothing imported, so no file written: all 3 rows were bad \(first: .*img_0"):
        import_tensorkart_folders([folder], tmp_path / "out.h5", skip_bad=True)
    assert not (tmp_path / "out.h5").exists()
    (folder / "data.csv").write_text("image,x,y,a,b,rb\n\n")
    with pytest.raises(KartStudioError, match="holds no rows"):
        import_tensorkart_folders([folder], tmp_path / "out.h5", skip_bad=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_existing_output_is_never_touched(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    other = tmp_path / "out.h5"
    other.write_bytes(b"")  # another import claimed this name a moment ago
    with pytest.raises(KartStudioError, match="already exists"):
        import_tensorkart_folders([folder], other)
    assert other.exists()


# -- bounded imports (issue 14) ------------------------------------------------------------------------


def test_huge_image_is_refused_from_its_header(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    Image.new("1", (12000, 12000)).save(folder / "img_1.png")  # a few KB claiming 144 megapixels
    tracemalloc.start()
    try:
        with pytest.raises(KartStudioError, match=r"img_1.png is 12000x12000 pixels; KartStudio reads images up to 4096x4096"):
            import_tensorkart_folders([folder], tmp_path / "out.h5")
        assert tracemalloc.get_traced_memory()[1] < 50e6
    finally:
        tracemalloc.stop()


def test_many_rows_stream_in_bounded_memory(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    with open(folder / "data.csv", "w") as fh:
        for t in range(100_000):
            fh.write(f"samples/x/img_{t}.png,0.5,0,1,0,0\n")
    tracemalloc.start()
    try:
        with pytest.raises(KartStudioError, match="all 100000 rows were bad"):
            import_tensorkart_folders([folder], tmp_path / "out.h5", skip_bad=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10e6, peak  # the rows are streamed; only the first 100 messages are kept


@pytest.mark.parametrize("content, message", [
    ("img_0.png,0,0,0,0,0\n".encode() + b"img_\xff\xfe.png,0,0,0,0,0\n", "line 2 is not UTF-8 text"),
    (b"img_0.png," + b"1" * (128 * 1024) + b",0,0,0,0\n", "line 1 is longer than 65536 characters"),
    (b"img_0.png,0,0,0,0,0\n\"img_1.png" + b"x" * 70000, "longer than|field larger"),
])
def test_damaged_csv_is_one_line(tmp_path, content, message):
    folder = _tensorkart_folder(tmp_path / "rec", n=1)
    (folder / "data.csv").write_bytes(content)
    with pytest.raises(KartStudioError, match=message) as err:
        import_tensorkart_folders([folder], tmp_path / "out.h5", skip_bad=True)
    assert "\n" not in str(err.value) and not (tmp_path / "out.h5").exists()


def test_jpeg_codec_import(tmp_path):
    from kartstudio.bench.record import synthetic_view

    folder = tmp_path / "rec"
    folder.mkdir()
    shots = [synthetic_view(t, 1, 480, 640) for t in range(4)]
    for t, shot in enumerate(shots):
        _png(folder / f"img_{t}.png", shot)
    (folder / "data.csv").write_text("".join(f"img_{t}.png,0.25,0,1,0,0\n" for t in range(4)))
    import_tensorkart_folders([folder], tmp_path / "out.h5", codec="jpeg")
    with open_session(tmp_path / "out.h5") as s:
        assert s.codec == "jpeg" and len(s) == 4
        expected = shots[3].reshape(240, 2, 320, 2, 3).mean(axis=(1, 3))
        assert np.abs(s.frame(3).astype(float) - expected).mean() < 4


# -- the command line ---------------------------------------------------------------------------------


def _cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "kartstudio", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_import_and_info(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", header=True)
    out = _cli("import", "tensorkart", folder, "-o", tmp_path / "s.h5")
    assert out.returncode == 0, out.stderr
    assert "6 frames" in out.stdout and "whole screen" in out.stdout
    info = _cli("info", tmp_path / "s.h5", "--json")
    assert info.returncode == 0
    (record,) = json.loads(info.stdout)
    assert record["frames"] == 6 and record["format_version"] == 2 and record["bytes_per_frame"] > 0
    assert record["layout"] == "whole" and record["codec"] == "lossless" and record["duration_s"] == 1.0
    text = _cli("info", tmp_path / "s.h5").stdout
    assert "whole screen" in text and "lossless" in text


def test_cli_npy_fps_and_concurrent_imports_to_one_output(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((300, 66, 200, 3), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros((300, 5)))
    out = tmp_path / "s.h5"
    args = [sys.executable, "-m", "kartstudio", "import", "npy", tmp_path / "X.npy", tmp_path / "y.npy",
            "-o", out, "--fps", "4"]
    procs = [subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    assert all("already exists" in err for code, err in results if code == 2)
    with open_session(out) as s:  # the winner's file is whole: no loser removed it
        assert len(s) == 300 and s.meta.fps == 4.0 and s.duration == pytest.approx(299 / 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "s.h5", "y.npy"]


def test_cli_errors_are_one_line_with_status_2(tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(3000))
    for args in (["info", corrupt], ["info", tmp_path / "nope.h5"], ["import", "tensorkart", tmp_path, "-o", tmp_path / "o.h5"],
                 ["import", "npy", tmp_path / "X.npy", tmp_path / "y.npy", "-o", tmp_path / "o.h5", "--fps", "0"]):
        out = _cli(*args)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kartstudio: error:")
    assert "corrupt.h5" in _cli("info", corrupt).stderr


def test_info_reports_repeated_frame_numbers_in_older_emulator_sessions(tmp_path):
    """Emulator sessions recorded before one frame per game frame hold the same game frame several
    times (frame numbers repeat); info says how many, and a clean session says nothing."""
    from kartstudio.controller import ControllerState
    from kartstudio.session import SessionMeta, SessionWriter

    numbers = {"old.h5": [5, 6, 6, 6, 7, 8, 8, 9], "new.h5": [5, 6, 7, 8, 9, 11, 12, 13]}
    for name, frame_numbers in numbers.items():
        with SessionWriter(tmp_path / name, SessionMeta(game="mk64", storage_size=(12, 16))) as w:
            for i, n in enumerate(frame_numbers):
                w.append(np.full((12, 16, 3), i, np.uint8), ControllerState(x=i), i / 30, n)
    info = _cli("info", tmp_path / "old.h5", tmp_path / "new.h5", "--json")
    assert info.returncode == 0, info.stderr
    assert [r["repeated_frames"] for r in json.loads(info.stdout)] == [3, 0]
    text = _cli("info", tmp_path / "old.h5", tmp_path / "new.h5").stdout
    assert text.count("frames repeat an earlier frame number") == 1 and "3 frames repeat" in text
