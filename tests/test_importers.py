import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kartstudio.errors import KartStudioError
from kartstudio.importers import import_tensorkart_arrays, import_tensorkart_folders
from kartstudio.session import open_session


def _png(path, color):
    import pygame

    img = np.zeros((480, 640, 3), np.uint8)
    img[:240] = color
    img[240:] = (255 - color[0], 0, 0)
    pygame.image.save(pygame.surfarray.make_surface(img.transpose(1, 0, 2)), str(path))


def _tensorkart_folder(root, n=6, absolute_from_elsewhere=False):
    """A folder as TensorKart's record.py leaves it: img_<t>.png and data.csv."""
    root.mkdir()
    lines = []
    for t in range(n):
        _png(root / f"img_{t}.png", (10 * t, 100, 200))
        name = f"/home/someone/TensorKart/samples/2017-03-01_10:00:00/img_{t}.png" if absolute_from_elsewhere \
            else f"samples/2017-03-01_10:00:00/img_{t}.png"
        lines.append(f"{name},{(t - 3) / 4},{0.1},{t % 2},{0},{1 if t == 4 else 0}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root


def test_import_folder_with_paths_from_another_machine(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec", absolute_from_elsewhere=True)
    report = import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert report.frames == 6 and not report.skipped
    with open_session(tmp_path / "out.h5") as s:
        assert len(s) == 6 and s.frames.shape[1:] == (120, 320, 3)
        assert tuple(s.frames[2][60, 160]) == (20, 100, 200)  # seat 1 = top half of the screenshot
        assert s.state(0).x == -60 and s.state(4).r and s.state(1).a
        assert np.allclose(s.actions[0], [-0.75, 0.1, 0, 0, 0])


def test_import_folder_relative_paths_and_two_folders(tmp_path):
    a = _tensorkart_folder(tmp_path / "a", n=3)
    b = _tensorkart_folder(tmp_path / "b", n=4)
    assert import_tensorkart_folders([a, b], tmp_path / "out.h5").frames == 7


def test_bad_row_is_named_with_file_and_line(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    with open(folder / "data.csv", "a") as fh:
        fh.write("img_1.png,0.5,zero,1,0,0\n")
    with pytest.raises(KartStudioError, match=r"data.csv line 7: .*--skip-bad"):
        import_tensorkart_folders([folder], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()  # no half-written output left behind


def test_missing_image_and_skip_bad(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    (folder / "img_2.png").unlink()
    (folder / "img_3.png").write_bytes(b"not a png")
    with pytest.raises(KartStudioError, match="line 3: image .*img_2.png not found"):
        import_tensorkart_folders([folder], tmp_path / "out.h5")
    report = import_tensorkart_folders([folder], tmp_path / "out2.h5", skip_bad=True)
    assert report.frames == 4 and len(report.skipped) == 2
    assert "line 4" in report.skipped[1]


def test_import_npy(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (20, 66, 200, 3), dtype=np.uint8)
    y = np.zeros((20, 5), np.float32)
    y[:, 0] = np.linspace(-1, 1, 20)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")
    with open_session(tmp_path / "out.h5") as s:
        assert s.frames.shape == (20, 66, 200, 3) and np.array_equal(s.frames[7], X[7])
        assert s.state(19).x == 80


def test_import_npy_mismatch(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((5, 66, 200, 3), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(KartStudioError, match="5 frames but .* 4 labels"):
        import_tensorkart_arrays(tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "out.h5")


def _cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "kartstudio", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_import_and_info(tmp_path):
    folder = _tensorkart_folder(tmp_path / "rec")
    out = _cli("import", "tensorkart", folder, "-o", tmp_path / "s.h5")
    assert out.returncode == 0, out.stderr
    info = _cli("info", tmp_path / "s.h5", "--json")
    assert info.returncode == 0
    (record,) = json.loads(info.stdout)
    assert record["frames"] == 6 and record["format_version"] == 1 and record["bytes_per_frame"] > 0


def test_cli_errors_are_one_line_with_status_2(tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(3000))
    for args in (["info", corrupt], ["info", tmp_path / "nope.h5"], ["import", "tensorkart", tmp_path, "-o", tmp_path / "o.h5"]):
        out = _cli(*args)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kartstudio: error:")
    assert "corrupt.h5" in _cli("info", corrupt).stderr
