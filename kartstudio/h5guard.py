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


# -- global heap collections ---------------------------------------------------------------------
# Variable-length data (text attributes, JPEG frames) lives in "global heap collections". HDF5
# parses a whole collection when it reads any object in it, and loops forever on one whose free
# space says it is 0 bytes long (a zeroed block inside a damaged file). So a collection is walked
# here first, the way HDF5 walks it, and refused unless every step moves forward inside it.

MAX_COLLECTION = 256 << 20  # bytes; HDF5 makes them 4 KB and up, one JPEG frame or so each


def heap_collection_ok(raw, address: int, end: int) -> bool:
    """Whether the global heap collection at `address` of the open file `raw` (read up to `end`)
    is one HDF5 can parse without looping: signature, size inside the file, each object's header
    inside the collection and every object moving the walk forward. Assumes 8-byte lengths (see
    standard_sizes)."""
    if address < 0 or address + 16 > end:
        return False
    raw.seek(address)
    header = raw.read(16)  # "GCOL", version 1, 3 reserved bytes, the collection's size (8)
    size = int.from_bytes(header[8:16], "little")
    if header[:5] != b"GCOL\x01" or not 16 < size <= MAX_COLLECTION or address + size > end:
        return False
    raw.seek(address)
    data = raw.read(size)
    p = 16
    while p < size:
        if p + 16 > size:  # too small for an object header: HDF5 counts it as free space
            break
        index = int.from_bytes(data[p:p + 2], "little")
        length = int.from_bytes(data[p + 8:p + 16], "little")
        step = 16 + ((length + 7) & ~7) if index else length  # index 0: free space, its size counts its header
        if step <= 0 or p + step > size:
            return False
        p += step
    return True


def standard_sizes(head: bytes) -> bool:
    """Whether an HDF5 superblock (the file's first bytes) uses 8-byte addresses and lengths, the
    only layout heap_collection_ok reads (every h5py and HDF5 default)."""
    if len(head) < 16 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return False
    version = head[8]
    offsets, lengths = (head[13], head[14]) if version in (0, 1) else (head[9], head[10])
    return offsets == 8 and lengths == 8


def check_heaps_near_start(raw, end: int, what: str, error: type[KartStudioError] = KartStudioError,
                           span: int = 16 << 10) -> None:
    """Walk every global heap collection that starts in the file's first `span` bytes (where a
    KartStudio file keeps its text attributes, written when it was created) before any attribute
    is read; refuse the file in one line if one would make HDF5 loop."""
    raw.seek(0)
    head = raw.read(min(span, end))
    if not standard_sizes(head):
        raise error(f"{what} is not an HDF5 file with the standard 8-byte sizes; KartStudio reads only those")
    at = head.find(b"GCOL")
    while at >= 0:
        if head[at + 4:at + 5] == b"\x01" and not heap_collection_ok(raw, at, end):
            raise error(f"{what} is damaged: a block of its text attributes (at byte {at}) is broken; "
                        "re-record or delete it")
        at = head.find(b"GCOL", at + 4)
