"""Session format v2: one HDF5 file per seat per recording session (see docs/session-format.md).

Plain h5py reads it. Frames are stored one per chunk with lossless gzip (the ``lossless`` codec,
the default) or as one JPEG per frame (the ``jpeg`` codec, about 3x smaller), so a reader
touching frame i decodes only frame i, and the dataset streams from disk for training.
``Session.frame(i)`` returns the decoded image for either codec. v1 files (lossless, no
``layout`` or ``codec`` attribute) are still read.

The writer uses HDF5's default (oldest) file format on purpose: it carries no "open for write"
flag, so a file whose recorder was killed still opens with plain ``h5py.File(path)`` and holds
every frame up to the last flush (the recorder flushes at least once a second).

The package, bottom to top: ``codecs`` (how frames are stored), ``meta`` (what a file says about
itself, and the checks of its attributes), ``names`` (file names, claiming them, finding sessions),
``writer`` (SessionWriter), ``reader`` (Session, open_session, the cut-short recovery, the checks on
open), ``listing`` (a folder's sessions, one row each). Import from ``kartstudio.session``: every public name is here.
"""

from kartstudio.session.codecs import CODECS, DEFAULT_JPEG_QUALITY, decode_jpeg, encode_frame, inflate_frame
from kartstudio.session.listing import session_rows
from kartstudio.session.meta import (DEFAULT_STORAGE_SIZE, FORMAT_NAME, FORMAT_VERSION, KINDS, LAYOUTS,
                                     MAX_TEXT_ATTRIBUTE, SessionMeta)
from kartstudio.session.names import (SUFFIX, claim_session_path, find_sessions, named_session_path,
                                      new_session_path, session_name)
from kartstudio.session.reader import (FRAME_ROWS, GAP_FACTOR, MAX_ROWS, OPEN_TRIES, REQUIRED, Session, frame_gaps,
                                       open_session, set_excluded)
from kartstudio.session.writer import LABEL_CHUNK_ROWS, SessionWriter

__all__ = [
    "CODECS", "DEFAULT_JPEG_QUALITY", "DEFAULT_STORAGE_SIZE", "FORMAT_NAME", "FORMAT_VERSION", "FRAME_ROWS",
    "GAP_FACTOR", "KINDS", "LABEL_CHUNK_ROWS", "LAYOUTS", "MAX_ROWS", "MAX_TEXT_ATTRIBUTE", "OPEN_TRIES",
    "REQUIRED", "SUFFIX", "Session", "SessionMeta", "SessionWriter", "claim_session_path", "decode_jpeg",
    "encode_frame", "find_sessions", "frame_gaps", "inflate_frame", "named_session_path", "new_session_path",
    "open_session", "session_name", "session_rows", "set_excluded",
]
