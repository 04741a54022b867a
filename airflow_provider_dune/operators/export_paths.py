"""Where an export lands: a path kept inside its base folder, written whole or not at all."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import uuid
from collections.abc import Callable
from typing import IO, TypeVar

from airflow.providers.common.compat.sdk import ObjectStoragePath
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_dune.exceptions import DuneConfigurationError

_T = TypeVar("_T")
log = logging.getLogger(__name__)


def path_under(base: ObjectStoragePath, relative: str) -> ObjectStoragePath:
    """``relative`` joined to ``base``, refused when it would land anywhere outside ``base``.

    The check is on the path's text (``..`` segments are resolved first), the same on local
    disks and object stores; a symbolic link that already sits inside ``base`` is followed.
    """
    if "://" in relative or relative.startswith("/"):
        raise DuneConfigurationError(
            f"path {relative!r} must be relative to base_path ({base}), e.g. 'daily/volume.csv'."
        )
    normal = posixpath.normpath(relative)
    if normal == "." or normal == ".." or normal.startswith("../"):
        raise DuneConfigurationError(
            f"path {relative!r} resolves to {normal!r}, outside base_path ({base}). A rendered "
            "template must name a file inside base_path; '..' may not climb out of it."
        )
    return base / normal


def write_atomically(target: ObjectStoragePath, write: Callable[[IO[bytes]], _T]) -> _T:
    """Run ``write`` into a hidden object beside ``target``; publish it as ``target`` only at the end.

    Readers see the old file or the whole new one, never a truncated export: local disks get
    one atomic rename; object stores, which have no rename, a copy then a delete of the
    temporary object (the destination object itself appears whole, as every upload does).
    Whatever fails, the temporary object is removed; only a killed process can leave one
    behind, named ``.<name>.<random>.part`` so that ``*.csv``-style globs skip it.
    """
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    with contextlib.suppress(OSError, NotImplementedError):
        # Local paths need their folder; object stores have none, and some refuse mkdir.
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with temp.open("wb") as out:
            result = write(out)
        _publish(temp, target)
    except BaseException:  # a timeout or a kill signal too: never leave the partial object
        _discard(temp)
        raise
    return result


def _publish(temp: ObjectStoragePath, target: ObjectStoragePath) -> None:
    if isinstance(temp.fs, LocalFileSystem):
        os.replace(temp.path, target.path)  # one rename, atomic within a filesystem
    else:
        temp.fs.mv(temp.path, target.path)


def _discard(temp: ObjectStoragePath) -> None:
    try:
        temp.unlink(missing_ok=True)
    except Exception as exc:  # the export's own error matters more than this one
        log.warning("Could not remove the unfinished export %s: %s", temp, exc)
