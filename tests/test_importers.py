import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from kartstudio.errors import KartStudioError
from kartstudio.importers import import_tensorkart_arrays, import_tensorkart_folder, import_tensorkart_folders
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
    report = import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert report.frames == 6 and not report.skipped and report.layout == "whole"
    with open_session(tmp_path / "out.h5") as s:
        assert len(s) == 6 and s.frames.shape[1:] == (240, 320, 3)
        assert s.layout == "whole" and s.meta.capture_region == (0, 0, 640, 480)
        frame = s.frame(2)
        assert tuple(frame[60, 160]) == (20, 100, 200)  # the top half of the screen...
        assert tuple(frame[180, 160]) == (235, 0, 0)  # ...and the bottom half are both kept
        # the generated files were written milliseconds apart: their times are no recording's
        assert s.meta.source == "tensorkart-record" and s.meta.fps == 4.0
        assert report.timing_source == "default" and "not used" in report.timing


@pytest.mark.parametrize("seat", [1, 2])
def test_seat_of_a_split_screen(tmp_path, seat):
    folder = _tensorkart_folder(tmp_path / "rec")
    report = import_tensorkart_folder(folder, tmp_path / "out.h5", seat=seat)
    assert report.layout == "seat"
    with open_session(tmp_path / "out.h5") as s:
        assert s.frames.shape[1:] == (120, 320, 3) and s.layout == "seat" and s.meta.seat == seat
        assert s.meta.capture_region == ((0, 0, 640, 240) if seat == 1 else (0, 240, 640, 240))
        assert tuple(s.frame(2)[60, 160]) == ((20, 100, 200) if seat == 1 else (235, 0, 0))


def test_half_height_frames_are_one_seat_as_they_are(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", size=(640, 240))
    import_tensorkart_folder(folder, tmp_path / "out.h5")
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
    report = import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert report.frames == 6 and report.unused_rows == 4
    with open_session(tmp_path / "out.h5") as s:
        assert s.meta.source == "tensorkart-joystick" and s.layout == "whole"
        assert np.array_equal(s.actions[:, 0], np.float32([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2]))
        assert tuple(s.frame(0)[10, 10]) == (22, 50, 60)


# -- labels, fps -------------------------------------------------------------------------------------


def test_labels_are_kept_exactly_and_states_are_quantized(tmp_path):
    values = [0.29364, -0.99997, 0.0001, 1.0, -0.5123, 0.77777]
    folder = _tensorkart_folder(tmp_path / "rec", values=values)
    import_tensorkart_folder(folder, tmp_path / "out.h5")
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
        assert s.state(19).x == 79 and s.layout == "whole" and s.meta.fps == 4.0
        assert s.duration == pytest.approx(19 / 4)  # X.npy keeps no times: record.py's usual 4 per second
        assert s.meta.extra["import"]["timing_source"] == "default"
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
    report = import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert report.frames == 6 and report.header_lines == 1 and not report.skipped


def test_bad_row_is_named_with_file_and_line(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    with open(folder / "data.csv", "a") as fh:
        fh.write("img_1.png,0.5,zero,1,0,0\n")
    with pytest.raises(KartStudioError, match=r"data.csv line 7: .*--skip-bad"):
        import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()  # no half-written output left behind
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]  # nor a temporary file


def test_missing_image_and_skip_bad(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    (folder / "img_2.png").unlink()
    (folder / "img_3.png").write_bytes(b"not a png")
    with pytest.raises(KartStudioError, match="line 3: image img_2.png not found"):
        import_tensorkart_folder(folder, tmp_path / "out.h5")
    report = import_tensorkart_folder(folder, tmp_path / "out2.h5", skip_bad=True)
    assert report.frames == 4 and report.skipped_rows == 2
    assert "line 4" in report.skipped[1] and "img_3.png" in report.skipped[1]


def test_image_paths_never_lead_outside_the_folder(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    for t in (7, 8):
        _png(tmp_path / f"img_{t}.png", _screenshot((1, 2, 3)))
    _png(folder / "img_9.png", _screenshot((90, 100, 200)))
    with open(folder / "data.csv", "a") as fh:
        fh.write("../img_7.png,0,0,0,0,0\n")  # only the name counts: rec/img_7.png does not exist
        fh.write(f"{tmp_path / 'img_8.png'},0,0,0,0,0\n")
        fh.write("..\\..\\img_9.png,0.5,0,0,0,0\n")  # a Windows path: rec/img_9.png is used
    report = import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert report.frames == 3 and report.skipped_rows == 2
    assert "img_7.png not found in" in report.skipped[0] and "img_8.png not found in" in report.skipped[1]
    with open_session(tmp_path / "out.h5") as s:
        assert tuple(s.frame(2)[10, 10]) == (90, 100, 200) and s.frame_numbers[:].tolist() == [0, 1, 9]


def test_an_import_of_zero_frames_writes_nothing(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=3)
    for png in folder.glob("*.png"):
        png.unlink()
    with pytest.raises(KartStudioError, match=r"nothing imported, so no file written: all 3 rows were bad \(first: .*img_0"):
        import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert not (tmp_path / "out.h5").exists()
    (folder / "data.csv").write_text("image,x,y,a,b,rb\n\n")
    with pytest.raises(KartStudioError, match="holds no rows"):
        import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_existing_output_is_never_touched(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    other = tmp_path / "out.h5"
    other.write_bytes(b"")  # another import claimed this name a moment ago
    with pytest.raises(KartStudioError, match="already exists"):
        import_tensorkart_folder(folder, other)
    assert other.exists()


# -- bounded imports (issue 14) ------------------------------------------------------------------------


def test_huge_image_is_refused_from_its_header(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", n=2)
    Image.new("1", (12000, 12000)).save(folder / "img_1.png")  # a few KB claiming 144 megapixels
    tracemalloc.start()
    try:
        with pytest.raises(KartStudioError, match=r"img_1.png is 12000x12000 pixels; KartStudio reads images up to 4096x4096"):
            import_tensorkart_folder(folder, tmp_path / "out.h5")
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
            import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
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
        import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert "\n" not in str(err.value) and not (tmp_path / "out.h5").exists()


def test_jpeg_codec_import(tmp_path):
    from kartstudio.bench.record import synthetic_view

    folder = tmp_path / "rec"
    folder.mkdir()
    shots = [synthetic_view(t, 1, 480, 640) for t in range(4)]
    for t, shot in enumerate(shots):
        _png(folder / f"img_{t}.png", shot)
    (folder / "data.csv").write_text("".join(f"img_{t}.png,0.25,0,1,0,0\n" for t in range(4)))
    import_tensorkart_folder(folder, tmp_path / "out.h5", codec="jpeg")
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
    assert record["layout"] == "whole" and record["codec"] == "lossless" and record["duration_s"] == 1.25  # 5 steps at 4/s
    assert record["import"]["timing_source"] == "default"
    text = _cli("info", tmp_path / "s.h5").stdout
    assert "whole screen" in text and "lossless" in text and "seat" not in text
    assert "timing: record.py's usual 4 samples per second" in text


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


# -- time and boundaries kept (issue 21) -----------------------------------------------------------------


def _set_times(folder, numbers, step_s, start=1_700_000_000.0, jitter=None):
    """Give img_<n>.png the modification time a recorder taking one sample every step_s would leave."""
    for k, n in enumerate(numbers):
        t = start + n * step_s + (jitter[k] if jitter is not None else 0.0)
        os.utime(folder / f"img_{n}.png", ns=(int(t * 1e9), int(t * 1e9)))


def _record_py_folder(root, numbers, size=(64, 48)):
    """record.py's layout with the rows of `numbers` only (rows removed from data.csv leave gaps)."""
    root.mkdir(parents=True)
    for t in range(max(numbers) + 1):
        _png(root / f"img_{t}.png", _screenshot((t % 250, 100, 200), size))
    (root / "data.csv").write_text("".join(f"samples/run/img_{t}.png,{t / 1000},0,1,0,0\n" for t in numbers))
    return root


def test_2013_layout_keeps_its_frame_numbers_at_2_samples_per_second(tmp_path):
    """kevinhughes27's luigi_raceway: rows 20..275, info.txt 22..269 -> 248 frames, 22..269, 123.5 s."""
    folder = tmp_path / "luigi_raceway"
    folder.mkdir()
    rows = []
    for t in range(20, 276):
        _png(folder / f"img_{t}.png", _screenshot((t % 250, 50, 60), (64, 48)))
        rows.append(f"{t},0.1,0,1,0,0")
    (folder / "joystick.csv").write_text("\n".join(rows) + "\n")
    (folder / "info.txt").write_text("luigi raceway\n22\n269\n")
    report = import_tensorkart_folder(folder, tmp_path / "luigi.h5")
    assert report.frames == 248 and report.unused_rows == 8 and report.timing_source == "fixed"
    assert (report.first_number, report.last_number, report.gap_count) == (22, 269, 0)
    with open_session(tmp_path / "luigi.h5") as s:
        assert s.frame_numbers[:].tolist() == list(range(22, 270))
        assert s.meta.fps == 2.0 and s.duration == pytest.approx(123.5)
        np.testing.assert_allclose(np.diff(s.timestamps[:]), 0.5)
        assert tuple(s.frame(0)[10, 10]) == (22, 50, 60)
    info = _cli("info", tmp_path / "luigi.h5")
    assert "123.5 s" in info.stdout and "2013 recorder's fixed 2 samples per second" in info.stdout


def test_record_py_folder_timed_by_its_image_files_with_a_gap(tmp_path):
    numbers = [n for n in range(40) if not 30 <= n <= 35]  # rows img_30..img_35 removed from data.csv
    folder = _record_py_folder(tmp_path / "2020-05-05_14-39-31", numbers)
    jitter = np.random.default_rng(0).uniform(-0.02, 0.02, len(numbers))
    _set_times(folder, numbers, 0.24, jitter=jitter)
    report = import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert report.timing_source == "files" and report.gaps == [(29, 36)] and report.gap_count == 1
    expected = (np.asarray(numbers) * 0.24 + jitter) - jitter[0]
    with open_session(tmp_path / "out.h5") as s:
        assert s.frame_numbers[:].tolist() == numbers  # 29 -> 36: the cut stays a cut
        np.testing.assert_allclose(s.timestamps[:], expected, atol=1e-6)
        assert s.duration == pytest.approx(expected[-1], abs=1e-6)
        assert s.meta.fps == pytest.approx(39 / expected[-1], abs=1e-3)
        assert s.meta.extra["import"]["gaps"] == 1
        clock_offset = float(s._file.attrs["clock_offset"])
    assert clock_offset + expected[-1] == pytest.approx(os.stat(folder / "img_39.png").st_mtime, abs=1e-3)
    out = _cli("info", tmp_path / "out.h5").stdout
    assert "image files' times" in out and "1 gap in the frame numbers" in out


@pytest.mark.parametrize("times, why", [
    ("same", "do not run forward"),  # unpacked from an archive: one time for all
    ("copied", "a sample apart"),  # copied without keeping times: a few ms apart
    ("shuffled", "do not run forward"),
    ("fast", "samples per second"),  # 30 ms apart throughout: no TensorKart recorder
    ("irregular", "irregular"),
])
def test_implausible_file_times_fall_back_to_record_py_rate(tmp_path, times, why):
    numbers = list(range(20))
    folder = _record_py_folder(tmp_path / "rec", numbers)
    rng = np.random.default_rng(1)
    if times == "same":
        _set_times(folder, numbers, 0.0)
    elif times == "copied":
        _set_times(folder, numbers, 0.003)
    elif times == "shuffled":  # each file gets another one's time
        for n, k in zip(numbers, rng.permutation(numbers)):
            os.utime(folder / f"img_{n}.png", (1.7e9 + 0.25 * k, 1.7e9 + 0.25 * k))
    elif times == "fast":
        _set_times(folder, numbers, 0.03)
    else:
        _set_times(folder, numbers, 0.0, jitter=np.cumsum(np.where(np.arange(20) % 2, 0.1, 1.2)))
    report = import_tensorkart_folder(folder, tmp_path / "out.h5")
    assert report.timing_source == "default" and why in report.timing, report.timing
    with open_session(tmp_path / "out.h5") as s:
        assert s.meta.fps == 4.0 and s.duration == pytest.approx(19 / 4)
    given = import_tensorkart_folder(folder, tmp_path / "given.h5", fps=6)
    assert given.timing_source == "given" and given.duration == pytest.approx(19 / 6)


def test_rows_out_of_order_or_without_an_index(tmp_path):
    folder = _record_py_folder(tmp_path / "rec", [0, 1, 2, 3, 4, 5])
    (folder / "data.csv").write_text("img_0.png,0,0,0,0,0\nimg_5.png,0,0,0,0,0\nimg_3.png,0,0,0,0,0\n"
                                     "shot.png,0,0,0,0,0\n")
    with pytest.raises(KartStudioError, match=r"line 3: frame 3 comes after frame 5"):
        import_tensorkart_folder(folder, tmp_path / "out.h5")
    report = import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert report.frames == 2 and report.skipped_rows == 2 and "no frame index" in report.skipped[1]
    # a data.csv of names without an index is numbered by row (a bad row still counts: a gap)
    (folder / "a.png").write_bytes((folder / "img_0.png").read_bytes())
    (folder / "data.csv").write_text("a.png,0,0,0,0,0\na.png,x,0,0,0,0\n" + "a.png,0,0,0,0,0\n" * 3)
    report = import_tensorkart_folder(folder, tmp_path / "rows.h5", skip_bad=True)
    with open_session(tmp_path / "rows.h5") as s:
        assert s.frame_numbers[:].tolist() == [0, 2, 3, 4] and report.gaps == [(0, 2)]


def test_several_folders_make_one_session_each(tmp_path):
    a = _record_py_folder(tmp_path / "one" / "rec", [0, 1, 2])
    b = _record_py_folder(tmp_path / "two" / "rec", [5, 6, 7, 8])  # the same folder name: rec-2.h5
    c = _record_py_folder(tmp_path / "2020-05-05_14-52-01", [0, 1])
    out = tmp_path / "sessions" / "new"  # made, parents too
    reports = import_tensorkart_folders([a, b, c], out)
    assert [r.path.name for r in reports] == ["rec.h5", "rec-2.h5", "2020-05-05_14-52-01.h5"]
    assert [r.frames for r in reports] == [3, 4, 2]
    with open_session(out / "rec-2.h5") as s:
        assert s.frame_numbers[:].tolist() == [5, 6, 7, 8] and s.meta.extra["folders"] == [str(b)]
        assert s.timestamps[0] == 0.0  # each session starts its own clock
    # one bad folder: nothing at all is written, the others' sessions neither
    (c / "img_1.png").unlink()
    with pytest.raises(KartStudioError, match="img_1.png not found"):
        import_tensorkart_folders([a, c], tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []
    # one file named for several folders, or a folder given twice: one line, nothing written
    with pytest.raises(KartStudioError, match="make one session each, so -o names a folder"):
        import_tensorkart_folders([a, b], tmp_path / "both.h5")
    with pytest.raises(KartStudioError, match="given twice"):
        import_tensorkart_folders([a, tmp_path / "one" / ".." / "one" / "rec"], tmp_path / "twice")
    assert not (tmp_path / "both.h5").exists() and not (tmp_path / "twice").exists()


def test_cli_several_folders_and_a_file_for_them(tmp_path):
    a = _record_py_folder(tmp_path / "a", [0, 1, 2])
    b = _record_py_folder(tmp_path / "b", [0, 1, 2, 3])
    out = _cli("import", "tensorkart", a, b, "-o", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("wrote ") == 2 and "timing: record.py's usual 4 samples per second" in out.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.h5", "b.h5"]
    bad = _cli("import", "tensorkart", a, b, "-o", tmp_path / "x.h5")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_skip_reasons_are_kept_in_the_session_and_shown_by_info(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    (folder / "img_2.png").unlink()
    with open(folder / "data.csv", "a") as fh:
        fh.write("img_9.png,0.5,zero,1,0,0\n")
    report = import_tensorkart_folder(folder, tmp_path / "out.h5", skip_bad=True)
    assert report.skipped_rows == 2
    with open_session(tmp_path / "out.h5") as s:
        notes = s.meta.extra["import"]
    assert notes["skipped_rows"] == 2 and "line 3: image img_2.png not found" in notes["skipped"][0]
    assert "line 7: a value is not a number" in notes["skipped"][1]
    text = _cli("info", tmp_path / "out.h5").stdout
    assert "2 bad rows skipped on import" in text and "img_2.png not found" in text
    (record,) = json.loads(_cli("info", tmp_path / "out.h5", "--json").stdout)
    assert record["import"]["skipped"] == notes["skipped"]


def test_import_notes_from_a_hand_edited_file_are_checked():
    from kartstudio.importers import import_notes

    assert import_notes({}) is None and import_notes({"import": "x"}) is None
    notes = import_notes({"import": {"skipped_rows": -3, "skipped": ["a\nb", 7], "gaps": True, "timing": ["x"]}})
    assert notes["skipped_rows"] == 0 and notes["skipped"] == ["a b"] and notes["gaps"] == 0 and notes["timing"] == ""


def test_frame_gaps_rule():
    from kartstudio.session import frame_gaps

    assert frame_gaps([22, 23, 24, 29, 30]).tolist() == [False, False, False, True, False]
    assert frame_gaps([0, 2, 4, 7, 9, 15]).tolist() == [False, False, False, False, False, True]  # usual step 2
    assert frame_gaps([5, 6, 6, 7, 3, 4]).tolist() == [False, False, False, False, True, False]  # repeat, restart
    assert frame_gaps([]).tolist() == [] and frame_gaps([4]).tolist() == [False]


def test_whole_screen_sessions_are_not_called_seat_1_and_sizes_are_binary(tmp_path):
    from kartstudio.formatting import human_size

    assert [human_size(n) for n in (512, 1536, 5 * 2**20, 3 * 2**30)] == ["512 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]
    folder = _tensorkart_folder(tmp_path / "rec", n=3)
    import_tensorkart_folder(folder, tmp_path / "whole.h5")
    import_tensorkart_folder(folder, tmp_path / "seat.h5", seat=2)
    text = _cli("info", tmp_path / "whole.h5", tmp_path / "seat.h5").stdout
    whole, seat = text.split(str(tmp_path / "seat.h5"))
    assert "whole screen" in whole and "seat 1" not in whole and "KiB on disk" in whole
    assert "seat 2" in seat and "whole screen" not in seat


def test_bench_import_makes_a_new_folder(tmp_path):
    out = _cli("bench", "import", "--frames", "3", "--folder", tmp_path / "new" / "deeper", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames"] == 3 and (tmp_path / "new" / "deeper" / "imported.h5").is_file()
