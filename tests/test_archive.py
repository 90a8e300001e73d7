"""training.archive: uploaded dataset zips unpack to a usable root, and hostile ones are refused.

Hostile zips are built here byte for byte the way an attacker would: names with ``..`` or an
absolute path, a symbolic link entry, a bomb of compressed zeros, and a central directory that
claims gigabytes. Each must be refused with a message naming the problem, and nothing may be
written outside the target folder.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from app.emotions import CLASS_NAMES
from app.runs import list_runs
from training.archive import (
    MAX_UNPACKED_BYTES,
    UPLOADS_DIR,
    dataset_in,
    extract_dataset_zip,
    stored_upload,
)
from training.data import DatasetError, load_split


def zip_folder(folder: Path, prefix: str = "") -> bytes:
    """``folder``'s files as a zip, each under ``prefix`` + its path relative to ``folder``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def zip_entries(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    """A zip entry that unzip(1) would create as a symbolic link to ``target``."""
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def claim_size(data: bytes, size: int) -> bytes:
    """``data`` (a one-entry zip) with the entry's uncompressed size in both headers set to ``size``."""
    patched = bytearray(data)
    local = patched.index(b"PK\x03\x04")
    struct.pack_into("<I", patched, local + 22, size)
    central = patched.index(b"PK\x01\x02")
    struct.pack_into("<I", patched, central + 24, size)
    return bytes(patched)


def files_under(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


# --- a real dataset in, its root out ----------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix", ["", "FER-2013/", "download/fer2013/"], ids=["contents", "folder", "nested"]
)
def test_kaggle_layout_zip_unpacks_to_its_dataset_root(
    fer2013_mini: Path, tmp_path: Path, prefix: str
) -> None:
    data = zip_folder(fer2013_mini, prefix)

    root = extract_dataset_zip(data, tmp_path / "out")

    assert root == tmp_path / "out" / prefix
    assert files_under(root) == files_under(fer2013_mini)
    for split in ("train", "public_test"):
        unpacked, original = load_split(root, split), load_split(fer2013_mini, split)
        assert [Path(s).name for s in unpacked.sources] == [Path(s).name for s in original.sources]
        assert (unpacked.x == original.x).all()


def test_zip_on_disk_works_like_its_bytes(fer2013_mini: Path, tmp_path: Path) -> None:
    path = tmp_path / "fer.zip"
    path.write_bytes(zip_folder(fer2013_mini, "fer2013/"))

    root = extract_dataset_zip(path, tmp_path / "out")

    assert files_under(root) == files_under(fer2013_mini)


def test_macos_resource_forks_are_left_out(fer2013_mini: Path, tmp_path: Path) -> None:
    patched = io.BytesIO(zip_folder(fer2013_mini, "fer/"))
    with zipfile.ZipFile(patched, "a") as archive:
        archive.writestr("__MACOSX/fer/train/happy/._Training_1.jpg", b"\0\5\26\7 resource fork")
        archive.writestr("fer/train/happy/._Training_2.jpg", b"\0\5\26\7 resource fork")

    root = extract_dataset_zip(patched.getvalue(), tmp_path / "out")

    assert root == tmp_path / "out" / "fer"
    assert not (tmp_path / "out" / "__MACOSX").exists()
    assert load_split(root, "train").skipped == ()


# --- hostile zips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escaped.txt", b"gotcha")], "points outside the folder it unpacks into"),
        ([("train/happy/../../../escaped.txt", b"gotcha")], "points outside the folder it unpacks into"),
        ([("..\\escaped.txt", b"gotcha")], "points outside the folder it unpacks into"),
        ([("/tmp/escaped.txt", b"gotcha")], "has an absolute path"),
        ([("C:\\Windows\\escaped.txt", b"gotcha")], "has an absolute path"),
        ([("train/happy/a.jpg", b"x"), symlink_entry("train/sad", "/etc")], "is a symbolic link"),
        ([symlink_entry("escaped.txt", "../../../../etc/passwd")], "is a symbolic link"),
    ],
    ids=["dotdot", "dotdot-inside", "backslash-dotdot", "absolute", "drive-letter", "dir-link", "file-link"],
)
def test_unsafe_entries_are_refused_before_anything_is_written(
    tmp_path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], message: str
) -> None:
    target = tmp_path / "deep" / "er" / "out"

    with pytest.raises(DatasetError, match=re.escape(message)):
        extract_dataset_zip(zip_entries(*entries), target)

    assert files_under(tmp_path) == []  # not even the safe entries, and nothing outside
    assert not Path("/tmp/escaped.txt").exists()


def test_zip_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    bomb = zip_entries(("train/happy/zeros.jpg", bytes(20_000_000)))
    assert len(bomb) < 100_000  # a real bomb: > 200x smaller than what it unpacks to

    with pytest.raises(
        DatasetError, match=re.escape("would unpack to 20.0 MB, more than the 10.0 MB accepted")
    ):
        extract_dataset_zip(bomb, tmp_path / "out", max_bytes=10_000_000)

    assert files_under(tmp_path) == []


def test_central_directory_claiming_gigabytes_is_refused_with_the_default_limit(tmp_path: Path) -> None:
    claimed = claim_size(zip_entries(("train/happy/a.jpg", b"tiny")), 3_000_000_000)
    assert MAX_UNPACKED_BYTES < 3_000_000_000

    with pytest.raises(DatasetError, match=r"would unpack to 3\.0 GB.*possible zip bomb"):
        extract_dataset_zip(claimed, tmp_path / "out")


def test_header_understating_its_size_cannot_write_more_than_it_declares(tmp_path: Path) -> None:
    liar = claim_size(zip_entries(("train/happy/zeros.jpg", bytes(5_000_000))), 100)

    with pytest.raises(DatasetError, match=re.escape("zip entry 'train/happy/zeros.jpg' is damaged")):
        extract_dataset_zip(liar, tmp_path / "out", max_bytes=1_000_000)

    assert sum(path.stat().st_size for path in (tmp_path / "out").rglob("*") if path.is_file()) <= 100


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    many = zip_entries(*[(f"train/happy/{n}.jpg", b"") for n in range(11)])

    with pytest.raises(DatasetError, match="holds 11 entries, more than the 10 accepted"):
        extract_dataset_zip(many, tmp_path / "out", max_files=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 but then nothing a zip needs", "not a readable zip file"),
        (b"happy,sad\n1,2\n", "not a readable zip file"),
        (zip_entries(), "the zip is empty"),
        (zip_entries(("__MACOSX/._x", b"")), "the zip is empty"),
    ],
    ids=["truncated", "csv-renamed", "empty", "only-macos-junk"],
)
def test_unusable_zips_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        extract_dataset_zip(data, tmp_path / "out")


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    data = bytearray(zip_entries(("train/happy/a.jpg", b"x")))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the "encrypted" bit of the general-purpose flags, as zip -e sets it

    with pytest.raises(DatasetError, match="is encrypted"):
        extract_dataset_zip(bytes(data), tmp_path / "out")


# --- uploads kept in the runs folder ----------------------------------------------------------------


def test_uploaded_zip_is_kept_once_under_the_runs_folder(fer2013_mini: Path, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    data = zip_folder(fer2013_mini, "fer2013/")

    first = stored_upload("FER.ZIP", data, runs_dir)
    again = stored_upload("copy.zip", data, runs_dir)

    assert first == again
    assert first.is_relative_to(runs_dir / UPLOADS_DIR) and first.name == "fer2013"
    assert files_under(first) == files_under(fer2013_mini)
    assert len(list((runs_dir / UPLOADS_DIR).iterdir())) == 1  # no partial folders left
    assert list_runs(runs_dir) == []  # the data area is not mistaken for a run


def test_uploaded_csv_and_zipped_csv_are_trained_on_as_csv(tmp_path: Path) -> None:
    table = b"emotion,pixels,Usage\n3," + b" ".join([b"7"] * 2304) + b",Training\n"

    plain = stored_upload("fer2013.csv", table, tmp_path / "runs")
    zipped = stored_upload("fer.zip", zip_entries(("data/fer2013.csv", table)), tmp_path / "runs")

    assert plain.name == zipped.name == "fer2013.csv"
    assert plain.read_bytes() == zipped.read_bytes() == table


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("faces.tar", b"...", "upload a .zip of the Kaggle layout or fer2013.csv"),
        ("faces.zip", zip_entries(("readme.txt", b"hi")), "neither train/ and test/ folders"),
        ("faces.zip", zip_entries(("a.csv", b""), ("b/c.csv", b"")), "several CSV files"),
        ("evil.zip", zip_entries(("../x", b"")), "points outside"),
    ],
    ids=["wrong-type", "no-dataset", "two-csvs", "unsafe"],
)
def test_unusable_uploads_are_refused_and_leave_nothing(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    runs_dir = tmp_path / "runs"

    with pytest.raises(DatasetError, match=re.escape(message)):
        stored_upload(name, data, runs_dir)

    uploads = runs_dir / UPLOADS_DIR
    assert list(uploads.iterdir()) == [] if uploads.is_dir() else True  # no partial folder left behind


def test_dataset_in_finds_the_layout_below_wrapping_folders(tmp_path: Path) -> None:
    for name in CLASS_NAMES:
        (tmp_path / "a" / "b" / "test" / name).mkdir(parents=True)

    assert dataset_in(tmp_path) == tmp_path / "a" / "b"


@pytest.mark.parametrize(
    "entries",
    [
        [("test/happy/x", b"a file"), ("test/happy/x/y.png", b"and a folder")],
        [("test/happy/x/y.png", b"a folder"), ("test/happy/x", b"and a file")],
        [("test/happy/x", b"a file"), ("test/happy/x/", b"")],
    ],
    ids=["file-then-folder", "folder-then-file", "file-then-folder-entry"],
)
def test_a_name_that_is_both_file_and_folder_is_refused_without_server_paths(
    tmp_path: Path, entries: list[tuple[str, bytes]]
) -> None:
    with pytest.raises(DatasetError, match="clashes with another entry") as refused:
        extract_dataset_zip(zip_entries(*entries), tmp_path / "out")

    assert str(tmp_path) not in str(refused.value)


def test_too_many_images_for_one_evaluation_are_refused_with_the_number(tmp_path: Path) -> None:
    many = zip_entries(*[(f"test/happy/{n}.png", b"") for n in range(11)], ("test/notes.txt", b""))

    with pytest.raises(DatasetError, match=r"holds 11 images, more than the 10 one upload may hold"):
        extract_dataset_zip(many, tmp_path / "out", max_images=10)
    assert extract_dataset_zip(many, tmp_path / "ok", max_images=11) == tmp_path / "ok"
