"""Unpack an uploaded dataset zip without trusting it.

A zip comes from a browser, so it is treated as hostile: an entry named ``../../app/main.py`` or
``/etc/passwd`` would write outside the folder it unpacks into, a symbolic link would make later
reads follow it anywhere on the server, and a few kilobytes can inflate to terabytes (a zip bomb).
:func:`extract_dataset_zip` refuses all of these with a :class:`~training.data.DatasetError`
naming the entry, before or while writing, and never writes outside ``target_dir``:

- names are checked as zip paths (``/`` and ``\\`` both separate), so no absolute path, drive
  letter or ``..`` part gets through, and every target is re-checked after resolving;
- only plain files and folders are unpacked: links, devices and pipes are refused, and nothing of
  the zip's permission bits is kept;
- the declared sizes may add up to at most ``max_bytes`` and the entries number at most
  ``max_files``; the bytes really written are counted too, since a header can lie;
- the images (by name) number at most ``max_images``, by default what one evaluation may read
  (:data:`MAX_EVALUATION_IMAGES`): 99,000 tiny images fit in 18 MB and cost gigabytes once read;
- a name that is both a file and a folder (``a/x`` and ``a/x/y.png``) is refused, not an OSError;
- encrypted entries are refused (there is no password to give), and macOS's ``__MACOSX/`` and
  ``._*`` resource-fork files are skipped: they are not images and would only be counted as
  unreadable ones.

FER2013 in the Kaggle layout is 35,887 files and about 60 MB, so the defaults (512 MiB, 100,000
entries) leave room for larger face datasets while stopping a bomb long before the disk fills.

:func:`stored_upload` is the Training page's way in: it keeps an upload (a zip, or a bare
``fer2013.csv``) under the runs folder's data area, named by its content's hash, so a run that
trained on it can still be resumed after a server restart, and the same file uploaded twice is
unpacked once.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from training.data import IMAGE_SUFFIXES, DatasetError

#: Largest total of unpacked bytes accepted by default (FER2013 is about 60 MB).
MAX_UNPACKED_BYTES = 512 << 20
#: Most entries (files and folders) accepted by default (FER2013 has 35,887 files).
MAX_ENTRIES = 100_000
#: Most images in a zip that is evaluated (Analysis, ``training.evaluate``): every image becomes
#: 11.5 kB of pixels while it is read (float32 model input plus the uint8 copy an evaluation
#: keeps), so this bounds what one anonymous upload costs the server (about 230 MB; measured by
#: ``benchmarks/upload_memory.py``). Training uploads, owner-only in public mode, allow MAX_ENTRIES.
MAX_EVALUATION_IMAGES = 20_000
FER2013_TEST_IMAGES = 7_178
#: Folder under the runs folder where uploaded datasets are kept (not a run: it has no config.json).
UPLOADS_DIR = "_uploads"
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
#: How deep below the zip's top the dataset root (the folder holding train/ or test/) may sit.
_ROOT_SEARCH_DEPTH = 3


def extract_dataset_zip(
    source: bytes | Path,
    target_dir: Path,
    *,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_files: int = MAX_ENTRIES,
    max_images: int = MAX_EVALUATION_IMAGES,
) -> Path:
    """Unpack the zip ``source`` (its bytes or its path) into ``target_dir``; return the dataset root.

    The dataset root is the shallowest folder holding ``train/`` or ``test/`` (the Kaggle layout),
    so a zip of the folder itself and a zip of its contents both work. A zip without either, e.g.
    one split's ``<class>/`` folders, returns the folder below any single wrapping folder and
    leaves judging the layout to the loader. Raises DatasetError for anything unsafe or unreadable;
    whatever was already written stays in ``target_dir`` for the caller to remove.
    """
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    base = target_dir.resolve()
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"the upload is not a readable zip file ({err})") from None
    with archive:
        entries = _checked_entries(archive.infolist(), max_bytes, max_files, max_images)
        budget = _Budget(max_bytes)
        for info, parts in entries:
            destination = base.joinpath(*parts)
            if not destination.resolve().is_relative_to(base):  # belt and braces after the name check
                raise DatasetError(f"zip entry {info.filename!r} would be written outside its folder")
            try:
                _unpack(archive, info, destination, budget)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
                raise DatasetError(f"zip entry {info.filename!r} is damaged ({err})") from None
            except (NotImplementedError, RuntimeError) as err:  # unsupported compression method
                raise DatasetError(f"zip entry {info.filename!r} cannot be unpacked ({err})") from None
            except (IsADirectoryError, NotADirectoryError, FileExistsError):
                # The OS error names the server's temporary folder: not for a visitor's eyes.
                raise DatasetError(
                    f"zip entry {info.filename!r} clashes with another entry: one name is both a file "
                    "and a folder in this zip"
                ) from None
    return dataset_root(target_dir)


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, budget: _Budget) -> None:
    """Write one entry; a name that is both a file and a folder fails here with an OSError."""
    if info.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as packed, destination.open("wb") as unpacked:
        while chunk := packed.read(_CHUNK):
            budget.spend(len(chunk))
            unpacked.write(chunk)


class _Budget:
    """Counts bytes actually unpacked, because declared sizes come from the (untrusted) zip."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise DatasetError(
                f"the zip unpacks to more than {_size(self.limit)} although its entries declare less: "
                "refused as a possible zip bomb"
            )


def _checked_entries(
    infos: list[zipfile.ZipInfo], max_bytes: int, max_files: int, max_images: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The entries to unpack with their safe path parts; DatasetError for the first unsafe one.

    Everything is checked before the first byte is written, so a refused zip leaves nothing behind
    (except when a header lied about a size, which only shows while unpacking).
    """
    if len(infos) > max_files:
        raise DatasetError(
            f"the zip holds {len(infos):,} entries, more than the {max_files:,} accepted: "
            "refused as a possible zip bomb"
        )
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise DatasetError(
            f"the zip would unpack to {_size(declared)}, more than the {_size(max_bytes)} accepted: "
            "refused as a possible zip bomb"
        )
    entries = []
    for info in infos:
        parts = _safe_parts(info.filename)
        if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
            continue
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded no file type
        if kind == stat.S_IFLNK:
            raise DatasetError(f"zip entry {info.filename!r} is a symbolic link; links are refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DatasetError(f"zip entry {info.filename!r} is not a plain file or folder")
        if info.flag_bits & 0x1:
            raise DatasetError(f"zip entry {info.filename!r} is encrypted; upload an unencrypted zip")
        entries.append((info, parts))
    if not entries:
        raise DatasetError("the zip is empty")
    images = sum(PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES for _, parts in entries)
    if images > max_images:
        raise DatasetError(
            f"the zip holds {images:,} images, more than the {max_images:,} one upload may hold "
            f"(FER2013's whole test folder is {FER2013_TEST_IMAGES:,}): upload fewer images"
        )
    return entries


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of zip entry ``name``, refusing absolute paths and any ``..``."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise DatasetError(f"zip entry {name!r} has an absolute path; only relative paths are accepted")
    parts = tuple(part for part in PurePosixPath(normalized).parts if part not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"zip entry {name!r} points outside the folder it unpacks into ('..')")
    if not parts or "\0" in normalized:
        raise DatasetError(f"zip entry {name!r} has no usable name")
    return parts


def dataset_root(folder: Path) -> Path:
    """The shallowest folder under ``folder`` that holds ``train/`` or ``test/``.

    Without one: ``folder`` itself, or the folder inside it when it holds just one folder (a zip of
    a folder rather than of its contents).
    """
    level = [folder]
    for _ in range(_ROOT_SEARCH_DEPTH + 1):
        for candidate in level:
            if (candidate / "train").is_dir() or (candidate / "test").is_dir():
                return candidate
        level = sorted(child for parent in level for child in parent.iterdir() if child.is_dir())
    root = folder
    while len(children := list(root.iterdir())) == 1 and children[0].is_dir():
        root = children[0]
    return root


def dataset_in(folder: Path) -> Path:
    """What to train on inside an unpacked upload: its Kaggle-layout root, or its only ``.csv`` file."""
    root = dataset_root(folder)
    if (root / "train").is_dir() or (root / "test").is_dir():
        return root
    tables = sorted(path for path in root.rglob("*.csv") if path.is_file())
    if len(tables) == 1:
        return tables[0]
    if len(tables) > 1:
        names = ", ".join(str(path.relative_to(folder)) for path in tables[:5])
        raise DatasetError(f"the zip holds several CSV files ({names}); upload just fer2013.csv")
    raise DatasetError("the zip holds neither train/ and test/ folders (the Kaggle layout) nor fer2013.csv")


def stored_upload(name: str, data: bytes, runs_dir: Path) -> Path:
    """Keep an uploaded dataset under ``runs_dir/_uploads/<hash>/``; return what to train on.

    ``name`` ending in ``.zip`` is unpacked safely (see :func:`extract_dataset_zip`) and may hold
    the Kaggle layout or one ``fer2013.csv``; ``.csv`` is stored as it is. The folder is written
    under a temporary name and renamed when complete, so a failed or concurrent upload never leaves
    a half-unpacked dataset under the final name, and an identical upload reuses it.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in (".zip", ".csv"):
        raise DatasetError(f"{name}: upload a .zip of the Kaggle layout or fer2013.csv")
    digest = hashlib.sha256(data).hexdigest()[:24]
    uploads = runs_dir / UPLOADS_DIR
    final = uploads / digest
    if not final.is_dir():
        uploads.mkdir(parents=True, exist_ok=True)
        partial = uploads / f".{digest}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if suffix == ".zip":
                extract_dataset_zip(data, partial, max_images=MAX_ENTRIES)
            else:
                partial.mkdir()
                (partial / "fer2013.csv").write_bytes(data)
            dataset_in(partial)  # a zip with nothing to train on is not kept
            try:
                partial.rename(final)
            except OSError:
                if not final.is_dir():  # not a concurrent twin that finished first
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return dataset_in(final)


def _size(n: int) -> str:
    """Bytes for a message: 1.5 GB, 300 MB, 12 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
