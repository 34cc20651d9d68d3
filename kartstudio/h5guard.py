"""Refuse HDF5 files that point outside themselves, before anything in them is read or written.

HDF5 follows three kinds of pointer to other files on its own: external links (a group member
that names another file), external storage (a dataset whose bytes live in a raw file such as
/etc/passwd) and virtual datasets (a dataset mapped onto datasets of other files). A session,
a model's weights or anything else we open must hold its data itself, so any of these is
refused in one line naming the object, and nothing is followed. Filters other than HDF5's
built-in ones are refused too: HDF5 would look for them as plugins, code loaded because of data.

Used by kartstudio.session (every open, reading or writing) and kartstudio.model (weights in
.keras files and imported TensorKart weights).
"""

from __future__ import annotations

import h5py

from kartstudio.errors import KartStudioError

# HDF5's own filters: deflate, shuffle, fletcher32, szip, nbit, scale-offset. Any other id makes
# HDF5 search its plugin path for a shared library.
BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6})
MAX_OBJECTS = 10_000  # a session holds about 10 objects, a model's weights a few hundred

# No filter plugin is ever loaded by this process (the checks below refuse such datasets first;
# an empty search path is the second lock): a file cannot name code for us to run.
while h5py.h5pl.size():
    h5py.h5pl.remove(0)


def check_self_contained(root: h5py.Group, what: str, error: type[KartStudioError] = KartStudioError) -> None:
    """Raise `error` naming the first link or dataset of `root` (a file or group)
    that refers to anything outside the file. `what` names the file in the message.

    Walks the links without following them (H5Lvisit recurses through hard links only), so an
    external link is seen as a link and never opened; datasets are judged by their creation
    properties alone, before a byte of their data is read.
    """
    seen = 0
    problem: str | None = None

    def visit(name: str, link) -> bool | None:
        nonlocal seen, problem
        seen += 1
        if seen > MAX_OBJECTS:
            problem = f"holds more than {MAX_OBJECTS} objects"
            return True
        if isinstance(link, h5py.ExternalLink):
            problem = f"{name!r} is a link to {link.path!r} in another file ({link.filename!r})"
            return True
        if not isinstance(link, h5py.HardLink):
            return None  # a soft link names a path inside this file, whose links are visited too
        try:
            obj = root.get(name)
        except Exception:  # noqa: BLE001 - a damaged object header: the caller's own checks name it
            return None
        if isinstance(obj, h5py.Dataset):
            problem = _dataset_problem(name, obj)
        return True if problem else None

    try:
        root.visititems_links(visit)
    except Exception as exc:  # noqa: BLE001 - HDF5 raises many kinds for damaged link tables
        raise error(f"{what}: its list of objects cannot be read ({type(exc).__name__})") from None
    if problem:
        raise error(
            f"{what} refers to data outside itself: {problem}; KartStudio never follows such references "
            "(the file may be hostile): use a file KartStudio wrote"
        )


def _dataset_problem(name: str, ds: h5py.Dataset) -> str | None:
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        return f"{name!r} is a virtual dataset mapped onto other files"
    if dcpl.get_external_count() > 0:
        outside = dcpl.get_external(0)[0]
        return f"{name!r} stores its data in the file {outside.decode(errors='replace')!r}"
    for i in range(dcpl.get_nfilters()):
        filter_id = dcpl.get_filter(i)[0]
        if filter_id not in BUILTIN_FILTERS:
            return f"{name!r} needs the HDF5 filter plugin {filter_id}, which KartStudio never loads"
    return None
