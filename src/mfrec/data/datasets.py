"""MovieLens datasets: find on disk, or download, verify and unpack; then load ratings, items and users.

Lookup order for a dataset ``name``: the ``data_dir`` argument, the ``MFREC_DATA_DIR`` environment
variable (one folder, or several joined by ``os.pathsep``), then the cache folder (``MFREC_CACHE_DIR``
or ``~/.cache/mfrec``). Each may hold the unpacked folder (``<dir>/ml-100k/u.data``) or the GroupLens
zip (``<dir>/ml-100k.zip``, which is unpacked into the cache). A folder that lacks one of the
dataset's files does not count. Failing all that, the zip is downloaded from GroupLens (base URL
overridable with ``MFREC_DOWNLOAD_URL``), checked against its MD5 (or, for the ``ml-latest`` sets
that have none, its file layout) and unpacked atomically into the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

import numpy as np
import pandas as pd

from mfrec._flags import check_flag
from mfrec.data.ratings import Ratings
from mfrec.data.readers import _CANONICAL_INT, RowLines, _text_ids, decode_error
from mfrec.errors import DataError, DatasetNotFoundError

DEFAULT_DOWNLOAD_URL = "https://files.grouplens.org/datasets/movielens"

Format = Literal["100k", "dat", "csv"]


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: where a MovieLens dataset lives inside its zip and how to read it."""

    name: str
    folder: str  # top-level folder inside the zip
    format: Format  # "100k": u.data/u.item/u.user; "dat": '::' files; "csv": ratings.csv/movies.csv
    ratings_file: str
    items_file: str
    users_file: str | None
    md5: str | None  # None: no stable checksum, the unpacked layout is checked instead
    rating_scale: tuple[float, float]
    encoding: str = "utf-8"  # of the items/users files

    @property
    def files(self) -> tuple[str, ...]:
        """The files a folder must hold to count as this dataset."""
        return tuple(f for f in (self.ratings_file, self.items_file, self.users_file) if f)


_CSV = dict(format="csv", ratings_file="ratings.csv", items_file="movies.csv", users_file=None, rating_scale=(0.5, 5.0))

DATASETS: dict[str, DatasetInfo] = {
    "ml-100k": DatasetInfo(
        "ml-100k", "ml-100k", "100k", "u.data", "u.item", "u.user",
        "0e33842e24a9c977be4e0107933c0723", (1.0, 5.0), "latin-1",
    ),
    "ml-1m": DatasetInfo(
        "ml-1m", "ml-1m", "dat", "ratings.dat", "movies.dat", "users.dat",
        "c4d9eecfca2ab87c1945afe126590906", (1.0, 5.0), "latin-1",
    ),
    "ml-10m": DatasetInfo(
        "ml-10m", "ml-10M100K", "dat", "ratings.dat", "movies.dat", None,
        "ce571fd55effeba0271552578f2648bd", (0.5, 5.0), "utf-8",
    ),
    "ml-20m": DatasetInfo("ml-20m", "ml-20m", md5="cd245b17a1ae2cc31bb14903e1204af3", **_CSV),
    "ml-25m": DatasetInfo("ml-25m", "ml-25m", md5="6b51fb2759a8657d3bfcbfc42b592ada", **_CSV),
    "ml-32m": DatasetInfo("ml-32m", "ml-32m", md5="d472be332d4daa821edc399621853b57", **_CSV),
    "ml-latest-small": DatasetInfo("ml-latest-small", "ml-latest-small", md5=None, **_CSV),
    "ml-latest": DatasetInfo("ml-latest", "ml-latest", md5=None, **_CSV),
}

#: Expected first lines of the csv-format files (checked when unpacking a zip without an MD5).
CSV_HEADERS = {"ratings.csv": "userId,movieId,rating,timestamp", "movies.csv": "movieId,title,genres"}

#: ml-100k genre flag order (u.genre); "unknown" maps to no genre.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

#: ml-1m occupation codes (README of ml-1m).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)

ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

_NO_GENRES = {"(no genres listed)", "unknown", ""}


# ---------------------------------------------------------------------------------------- Dataset
@dataclass(repr=False, eq=False)
class Dataset:
    """A loaded MovieLens dataset.

    ``ratings`` has timestamps; ``items`` is indexed by raw item id with ``title``, ``genres`` (list
    of str) and ``year`` (Int64); ``users`` (ml-100k, ml-1m only, else None) is indexed by raw user
    id with ``age``, ``gender``, ``occupation``, ``zip``; ``path`` is the folder read.
    """

    name: str
    ratings: Ratings
    items: pd.DataFrame
    users: pd.DataFrame | None
    path: Path
    info: DatasetInfo

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.ratings)} ratings, {self.ratings.n_users} users, "
            f"{self.ratings.n_items} rated items, {len(self.items)} items in the catalog, path={str(self.path)!r})"
        )

    def summary(self) -> dict:
        """``ratings.summary()`` plus the name, the path and the catalog sizes."""
        return {
            "name": self.name,
            "path": str(self.path),
            **self.ratings.summary(),
            "catalog_items": len(self.items),
            "catalog_users": None if self.users is None else len(self.users),
        }

    def official_split(self, name: str) -> tuple[Ratings, Ratings]:
        """The predefined (train, test) split ``name`` of ml-100k ("u1".."u5", "ua", "ub").

        Both share the id maps of :attr:`ratings`, so a model fit on ``train`` predicts ``test``.
        """
        if self.info.format != "100k":
            raise ValueError(
                f"{self.name} has no official train/test split; only ml-100k ships them "
                f"({', '.join(ML100K_SPLITS)}). Use a random or temporal split instead."
            )
        if name not in ML100K_SPLITS:
            raise ValueError(f"unknown ml-100k split {name!r}; choose one of {', '.join(ML100K_SPLITS)}")
        parts = []
        for suffix in ("base", "test"):
            path = self.path / f"{name}.{suffix}"
            if not path.is_file():
                raise FileNotFoundError(f"ml-100k split file {path} is missing; the folder {self.path} is incomplete")
            parts.append(
                Ratings.read_csv(
                    path, sep="\t", header=False, timestamp=3, rating_scale=self.info.rating_scale,
                    user_map=self.ratings.user_map, item_map=self.ratings.item_map,
                )
            )
        train, test = parts
        shared = train.shared_pairs(test)
        if len(shared):  # a damaged or edited copy: the "held-out" ratings would be training ratings
            raise DataError(f"{name}.test shares {len(shared)} (user, item) pairs with {name}.base (the first: "
                            f"{test.pair_at(shared[0])}); the split files are not the official ones",
                            source=str(self.path / f"{name}.test"))
        return train, test


# ---------------------------------------------------------------------------------------- locations
def default_cache_dir() -> Path:
    """``MFREC_CACHE_DIR`` or ``~/.cache/mfrec``."""
    env = os.environ.get("MFREC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mfrec"


def download_url(name: str) -> str:
    """The zip URL of a dataset (base from ``MFREC_DOWNLOAD_URL`` when set)."""
    base = os.environ.get("MFREC_DOWNLOAD_URL") or DEFAULT_DOWNLOAD_URL
    return f"{base.rstrip('/')}/{name}.zip"


def _search_dirs(data_dir: str | os.PathLike | None, cache: Path) -> list[tuple[Path, str]]:
    """(folder, how it was given) in lookup order, without repeats."""
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir argument"))
    env = os.environ.get("MFREC_DATA_DIR")
    if env:
        dirs += [(Path(p).expanduser(), "MFREC_DATA_DIR") for p in env.split(os.pathsep) if p]
    dirs.append((cache, "cache"))
    seen: set[Path] = set()
    out = []
    for d, label in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append((d, label))
    return out


def _missing_files(folder: Path, info: DatasetInfo) -> list[str]:
    return [f for f in info.files if not (folder / f).is_file()]


def _folder_names(info: DatasetInfo) -> list[str]:
    return list(dict.fromkeys((info.name, info.folder)))


# ---------------------------------------------------------------------------------------- zip handling
def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_md5(zip_path: Path, info: DatasetInfo, digest: str | None = None) -> None:
    if info.md5 is None:
        return
    digest = digest or _md5(zip_path)
    if digest.lower() != info.md5.lower():
        raise DataError(
            f"MD5 checksum mismatch for {info.name}: expected {info.md5}, got {digest}; the zip is corrupt, "
            "truncated or not the GroupLens file. Delete it and download it again",
            source=str(zip_path),
        )


def _check_layout(folder: Path, info: DatasetInfo, source: Path) -> None:
    """The dataset's files are present (and csv files start with the expected header)."""
    missing = _missing_files(folder, info)
    if missing:
        raise DataError(
            f"the zip does not hold the {info.name} files {missing} in folder {info.folder!r}", source=str(source)
        )
    for f in info.files:
        expected = CSV_HEADERS.get(f) if info.format == "csv" else None
        if expected is not None:
            with open(folder / f, "r", encoding="utf-8", errors="replace") as fh:
                first = fh.readline().strip().lstrip("\ufeff")
            if first != expected:
                raise DataError(
                    f"{info.name}/{f} starts with {first[:80]!r}, expected the header {expected!r}", source=str(source)
                )


def _safe_members(zf: zipfile.ZipFile, dest: Path, source: Path) -> None:
    """Refuse absolute paths, '..' parts and symlinks (zip path traversal)."""
    root = dest.resolve()
    for m in zf.infolist():
        name = m.filename
        is_link = (m.external_attr >> 16) & 0o170000 == 0o120000
        target = (root / name).resolve()
        if is_link or name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name) or not target.is_relative_to(root):
            raise DataError(f"unsafe entry {name!r} in zip (it would be written outside the target folder)", source=str(source))


#: the file in an unpacked cache folder naming the zip it came from (path, size, mtime)
STAMP = ".mfrec-source.json"
#: a member of a dataset zip may inflate to at most this many bytes, and this many times its
#: compressed size (MovieLens CSVs compress 3-10x; a zip bomb 1000x)
MAX_MEMBER_BYTES = 8 << 30
MAX_MEMBER_RATIO = 100


def _zip_stamp(zip_path: Path) -> dict:
    st = zip_path.stat()
    return {"zip": str(zip_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _unpacked_from(folder: Path, zip_path: Path) -> bool:
    """Whether the cache folder was unpacked from this very zip (same path, size and mtime)."""
    try:
        return json.loads((folder / STAMP).read_text()) == _zip_stamp(zip_path)
    except (OSError, ValueError):
        return False


def _unpack(zip_path: Path, info: DatasetInfo, cache: Path, replace: bool = False) -> Path:
    """Unpack the dataset's files of ``zip_path`` into ``cache/<name>`` atomically; return that
    folder (``replace``: over a complete copy unpacked from another zip, or none recorded).

    Extraction goes to a temporary folder inside ``cache`` that is renamed into place only when
    the files check out; on any failure nothing half-written is left behind. Every member must
    inflate to at most `MAX_MEMBER_BYTES` and `MAX_MEMBER_RATIO` times its compressed size.
    """
    target = cache / info.name
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{info.name}.", suffix=".unpack", dir=cache))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                _safe_members(zf, tmp, zip_path)
                members = zf.infolist()
                for m in members:
                    if m.file_size > MAX_MEMBER_BYTES or m.file_size > MAX_MEMBER_RATIO * max(m.compress_size, 1 << 16):
                        raise DataError(f"zip member {m.filename!r} would inflate to {m.file_size:,} bytes from "
                                        f"{m.compress_size:,}: refused as a zip bomb", source=str(zip_path))
                zf.extractall(tmp, members=members)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DataError(f"not a valid zip file ({exc}); delete it and download it again", source=str(zip_path)) from None
        inner = tmp / info.folder
        if not inner.is_dir() and not _missing_files(tmp, info):
            inner = tmp  # files at the top level of the zip
        _check_layout(inner, info, zip_path)
        (inner / STAMP).write_text(json.dumps(_zip_stamp(zip_path)))
        if not replace and target.is_dir() and not _missing_files(target, info):
            return target  # another process finished first
        if target.exists():  # an incomplete leftover or a copy of another zip: moved aside, removed below
            os.replace(target, tmp / ".replaced")
        os.replace(inner, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(info: DatasetInfo, url: str, cache: Path, progress: bool) -> Path:
    """Download, verify and unpack; the zip goes to a temp file in ``cache`` and is removed after."""
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.name}.", suffix=".zip.part", dir=cache)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    got = _copy_stream(resp, out, h, total, info.name, progress)
            except urllib.error.HTTPError as exc:
                raise _DownloadFailed(f"HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise _DownloadFailed(str(getattr(exc, "reason", exc)) or type(exc).__name__) from None
        if total is not None and got != total:
            raise _DownloadFailed(f"the connection closed after {got} of {total} bytes")
        _check_md5(tmp, info, h.hexdigest())
        return _unpack(tmp, info, cache)
    finally:
        tmp.unlink(missing_ok=True)


class _DownloadFailed(Exception):
    pass


def _copy_stream(resp: Any, out: Any, h: Any, total: int | None, label: str, progress: bool) -> int:
    """Copy the response to ``out``, feeding the hash (and a rich progress bar); return the byte count."""
    chunk = 1 << 16
    got = 0
    if not progress:
        while block := resp.read(chunk):
            out.write(block)
            h.update(block)
            got += len(block)
        return got
    from rich.console import Console
    from rich.progress import (
        BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        while block := resp.read(chunk):
            out.write(block)
            h.update(block)
            got += len(block)
            bar.advance(task, len(block))
    return got


# ---------------------------------------------------------------------------------------- locate
def locate_dataset(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = True
) -> Path:
    """The folder holding dataset ``name``: found, unpacked from a local zip, or downloaded."""
    info = _info(name)
    cache = default_cache_dir()
    searched: list[str] = []
    incomplete: list[str] = []
    for d, label in _search_dirs(data_dir, cache):
        searched.append(f"{d} ({label})")
        for folder_name in _folder_names(info):
            folder = d / folder_name
            if folder.is_dir():
                missing = _missing_files(folder, info)
                if not missing:
                    return folder
                incomplete.append(f"{folder} exists but is incomplete (missing {', '.join(missing)})")
        zip_path = d / f"{info.name}.zip"
        if zip_path.is_file():
            cached = cache / info.name
            complete = cached.is_dir() and not _missing_files(cached, info)
            if complete and _unpacked_from(cached, zip_path):
                return cached
            # not yet unpacked, or unpacked from another (older, replaced, broken) zip: unpack this one
            _check_md5(zip_path, info)
            return _unpack(zip_path, info, cache, replace=complete)

    url = download_url(info.name)
    reason = "download=False"
    if download:
        try:
            return _download(info, url, cache, progress)
        except _DownloadFailed as exc:
            reason = f"the download failed: {exc}"
    raise DatasetNotFoundError(_not_found_message(info, url, searched, incomplete, reason))


def _not_found_message(info: DatasetInfo, url: str, searched: list[str], incomplete: list[str], reason: str) -> str:
    files = ", ".join(info.files)
    msg = (
        f"MovieLens dataset {info.name!r} was not found and not downloaded ({reason}). "
        f"Searched for a folder {' or '.join(_folder_names(info))}/ holding {files}, or {info.name}.zip, in: "
        f"{'; '.join(searched)}. "
    )
    if incomplete:
        msg += " ".join(s[0].upper() + s[1:] + "." for s in incomplete) + " "
    msg += (
        f"Get it from {url} and put the zip or its unpacked folder in one of these places, or set "
        f"MFREC_DATA_DIR to the folder that holds it"
    )
    msg += (
        ", or pass download=True." if reason == "download=False"
        else "; check the network connection (the base URL comes from MFREC_DOWNLOAD_URL when set)."
    )
    return msg


def _info(name: str) -> DatasetInfo:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[key]


# ---------------------------------------------------------------------------------------- parsing
def _split_genres(genres: pd.Series) -> pd.Series:
    """'A|B' strings -> lists; "(no genres listed)"/"unknown" -> []; "Children's" -> "Children"."""
    s = genres.fillna("").astype(str).str.strip().str.replace("Children's", "Children", regex=False)
    return pd.Series([[] if g in _NO_GENRES else g.split("|") for g in s], index=genres.index, dtype=object)


_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")


def _years(titles: pd.Series, fallback: pd.Series | None = None) -> pd.Series:
    """Year from a trailing "(1995)" in the title, else from ``fallback`` (a date ending in the year)."""
    year = pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce")
    if fallback is not None:
        alt = pd.to_numeric(fallback.astype(str).str.extract(r"(\d{4})\s*$", expand=False), errors="coerce")
        year = year.fillna(alt)
    return year.astype("Int64")


LineOf = Callable[[int], int]


def _items_frame(
    ids: pd.Series, titles: pd.Series, genres: pd.Series, year: pd.Series, source: Path, line_of: LineOf
) -> pd.DataFrame:
    """The catalog indexed by item id; ``line_of(k)`` is the file line of row ``k`` (for errors)."""
    values = _text_ids(ids)
    if values.dtype != np.int64:
        text = ids.astype(object).fillna("").astype(str).str.strip()
        k = int(np.flatnonzero(~text.str.fullmatch(_CANONICAL_INT).to_numpy(dtype=bool))[0])
        raise DataError(f"item id {ids.iloc[k]!r} is not an integer", source=str(source), line=line_of(k))
    idx = pd.Index(values, name="item")
    if not idx.is_unique:
        k = int(np.flatnonzero(idx.duplicated())[0])
        raise DataError(f"item id {idx[k]} appears twice", source=str(source), line=line_of(k))
    df = pd.DataFrame(
        {"title": titles.fillna("").astype(str).str.strip().to_numpy(), "genres": genres.to_numpy(), "year": year.to_numpy()},
        index=idx,
    )
    df["year"] = df["year"].astype("Int64")
    return df


def _read_text_lines(path: Path, encoding: str) -> pd.Series:
    """Non-empty lines of a text file, indexed by their 1-based line number. The file must be
    valid in ``encoding`` (the dataset's declared one, :attr:`DatasetInfo.encoding`): no silent
    fallback to another encoding; a bad byte is a DataError with its offset and line."""
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None
    lines = pd.Series(text.splitlines(), dtype=object)
    lines.index = lines.index + 1
    return lines[lines.str.strip() != ""]


def _split_fields(path: Path, encoding: str, n: int, sep: str = "::") -> pd.DataFrame:
    """A ``sep``-separated file as ``n`` string columns, indexed by file line; a line with
    another number of fields is a DataError naming it (a short row padded with empty fields
    would silently drop a genre or an occupation).

    With three '::' fields (movies.dat) the line is split once from the left and once from the
    right, so a title may itself hold ':' or '::'.
    """
    lines = _read_text_lines(path, encoding)
    seps = lines.str.count(re.escape(sep)).to_numpy()
    bad = seps < n - 1 if (n == 3 and sep == "::") else seps != n - 1
    if len(lines) == 0 or bad.any():
        line = int(lines.index[np.flatnonzero(bad)[0]]) if bad.any() else None
        found = f", found {int(seps[bad][0]) + 1}" if bad.any() else " (the file is empty)"
        raise DataError(f"expected {n} {sep!r}-separated fields{found}", source=str(path), line=line)
    if sep != "::":
        return lines.str.split(sep, n=n - 1, expand=True, regex=False)
    if n == 3:
        head = lines.str.split("::", n=1, expand=True)
        tail = head[1].str.rsplit("::", n=1, expand=True)
        return pd.DataFrame({0: head[0], 1: tail[0], 2: tail[1]})
    return lines.str.split("::", expand=True)


def _index_lines(df: pd.DataFrame) -> LineOf:
    """Row -> line for a frame indexed by file line (from :func:`_split_fields`)."""
    return lambda k: int(df.index[k])


def _read_ratings(folder: Path, info: DatasetInfo) -> Ratings:
    path = folder / info.ratings_file
    if info.format == "100k":
        return Ratings.read_csv(path, sep="\t", header=False, timestamp=3, rating_scale=info.rating_scale)
    if info.format == "dat":
        return Ratings.read_csv(path, sep="::", header=False, timestamp=3, rating_scale=info.rating_scale)
    return Ratings.read_csv(
        path, sep=",", header=True, user="userId", item="movieId", rating="rating", timestamp="timestamp",
        rating_scale=info.rating_scale,
    )


def _read_items(folder: Path, info: DatasetInfo) -> pd.DataFrame:
    path = folder / info.items_file
    if info.format == "100k":
        df = _split_fields(path, info.encoding, 5 + len(ML100K_GENRES), sep="|")
        line_of = _index_lines(df)
        raw_flags = df.iloc[:, 5:].apply(lambda c: c.str.strip())
        bad = ~raw_flags.isin(["0", "1"]).to_numpy()
        if bad.any():
            k, j = (int(x[0]) for x in np.nonzero(bad))
            raise DataError(f"genre flag {raw_flags.iat[k, j]!r} is not 0 or 1", source=str(path), line=line_of(k),
                            column=ML100K_GENRES[j])
        flags = (raw_flags == "1").to_numpy()
        names = np.array(ML100K_GENRES[1:], dtype=object)  # the "unknown" flag means no genre
        genres = pd.Series([list(names[row]) for row in flags[:, 1:]], index=df.index, dtype=object)
        return _items_frame(df[0], df[1], genres, _years(df[1], df[2]), path, line_of)
    if info.format == "dat":
        df = _split_fields(path, info.encoding, 3)
        return _items_frame(df[0], df[1], _split_genres(df[2]), _years(df[1]), path, _index_lines(df))
    try:
        df = pd.read_csv(path, dtype={"movieId": str, "title": str, "genres": str}, keep_default_na=False, encoding=info.encoding)
    except UnicodeDecodeError:
        raise decode_error(path, info.encoding) from None
    missing = [c for c in ("movieId", "title", "genres") if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; the header has {list(df.columns)}", source=str(path))
    lines = RowLines(path, info.encoding, ",", 1, skip_blank=True)  # the header is line 1; quoted titles may span lines
    return _items_frame(df["movieId"], df["title"], _split_genres(df["genres"]), _years(df["title"]), path, lines)


def _read_users(folder: Path, info: DatasetInfo) -> pd.DataFrame | None:
    if info.users_file is None:
        return None
    path = folder / info.users_file
    if info.format == "100k":
        df = _split_fields(path, info.encoding, 5, sep="|")  # id|age|gender|occupation|zip
        uid, age, gender, occ, zip_ = (df[k] for k in range(5))
        line_of: LineOf = _index_lines(df)
    else:
        df = _split_fields(path, info.encoding, 5)
        uid, gender, age, occ_code, zip_ = (df[k] for k in range(5))
        line_of = _index_lines(df)
        codes = pd.to_numeric(occ_code, errors="coerce")
        bad = codes.isna() | ~codes.between(0, len(ML1M_OCCUPATIONS) - 1)
        if bad.any():
            k = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"unknown occupation code {occ_code.iloc[k]!r}", source=str(path), line=line_of(k), column="Occupation")
        occ = pd.Series(np.array(ML1M_OCCUPATIONS, dtype=object)[codes.to_numpy(dtype=np.int64)], index=df.index)
    # ids as the ratings reader takes them (plain integers: no '1.5', '+1' or '007'); ages whole
    for raw, col, pattern in ((uid, "user id", _CANONICAL_INT), (age, "age", r"^[0-9]+$")):
        bad = ~raw.astype(str).str.strip().str.fullmatch(pattern, na=False)
        if bad.any():
            k = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{col} {raw.iloc[k]!r} is not a whole number ({int(bad.sum())} such rows in all)",
                            source=str(path), line=line_of(k), column=col)
    ids = pd.to_numeric(uid.astype(str).str.strip(), errors="coerce")
    ages = pd.to_numeric(age.astype(str).str.strip(), errors="coerce")
    for values, col in ((ids, "user id"), (ages, "age")):
        if values.isna().any() or values.abs().max() >= 2**63:
            raise DataError(f"{col}s do not fit a 64-bit integer", source=str(path), column=col)
    dup = ids.duplicated().to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise DataError(f"user id {int(ids.iloc[k])} appears twice", source=str(path), line=line_of(k), column="user id")
    out = pd.DataFrame(
        {
            "age": ages.astype(np.int64).to_numpy(),
            "gender": gender.str.strip().to_numpy(),
            "occupation": occ.str.strip().to_numpy(),
            "zip": zip_.str.strip().to_numpy(),
        },
        index=pd.Index(ids.astype(np.int64).to_numpy(), name="user"),
    )
    return out


# ---------------------------------------------------------------------------------------- public API
def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = True
) -> Dataset:
    """Load a MovieLens dataset (ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest-small, ml-latest).

    Looks in ``data_dir``, ``MFREC_DATA_DIR`` and the cache; downloads when ``download`` is true.
    Raises :class:`~mfrec.errors.DatasetNotFoundError` when the data is neither found nor downloaded,
    and :class:`~mfrec.errors.DataError` for a corrupt zip or malformed file.
    """
    info = _info(name)
    download, progress = check_flag("download", download), check_flag("progress", progress)
    folder = locate_dataset(info.name, data_dir=data_dir, download=download, progress=progress)
    return Dataset(
        name=info.name,
        ratings=_read_ratings(folder, info),
        items=_read_items(folder, info),
        users=_read_users(folder, info),
        path=folder,
        info=info,
    )


_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|l'|il|das|der|die|el|los|las)$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(r"^(the|a|an|les|la|le|l|il|das|der|die|el|los|las) ")


def _search_key(s: pd.Series) -> pd.Series:
    """Lowercase, punctuation to spaces, single spaces."""
    return s.str.lower().str.replace(r"[^\w]+", " ", regex=True).str.strip()


def _normalized_query(query: str) -> str:
    q = " ".join(re.sub(r"[^\w]+", " ", str(query).lower()).split())
    if not q:
        raise ValueError("the title query is empty (after removing punctuation)")
    return q


def _item_table(dataset: Dataset | pd.DataFrame) -> pd.DataFrame:
    items = dataset.items if isinstance(dataset, Dataset) else dataset
    if not isinstance(items, pd.DataFrame) or "title" not in items.columns:
        raise TypeError("need a Dataset or an items DataFrame with a 'title' column")
    return items


def _title_ranks(items: pd.DataFrame, q: str) -> np.ndarray:
    """Per item: 0 the title equals ``q`` (with or without its year, a leading/trailing article
    ignored), 1 starts with it, 2 has it at a word start, 3 anywhere, 4 no match."""
    titles = items["title"].fillna("").astype(str)
    bare = titles.str.replace(_YEAR_IN_TITLE, "", regex=True).str.strip()
    moved = bare.str.replace(_ARTICLE, lambda m: f"{m.group(2)} {m.group(1)}", regex=True)
    no_article = _search_key(moved).str.replace(_LEADING_ARTICLE, "", regex=True)
    q_no_article = _LEADING_ARTICLE.sub("", q)
    best = np.where((_search_key(titles) == q) | (no_article == q_no_article), 0, 4)
    for key in (_search_key(bare), _search_key(moved)):
        padded = " " + key
        rank = np.select(
            [key == q, key.str.startswith(q), padded.str.contains(" " + q, regex=False), key.str.contains(q, regex=False)],
            [0, 1, 2, 3],
            default=4,
        )
        best = np.minimum(best, rank)
    return np.asarray(best)


def _item_counts(dataset: Dataset | pd.DataFrame, items: pd.DataFrame, counts: Any) -> np.ndarray:
    """Ratings per item of ``items`` (aligned with its rows): from ``counts`` (a Series by item
    id, or an array in the row order), else from a Dataset's ratings, else zeros."""
    if counts is None and isinstance(dataset, Dataset):
        r = dataset.ratings
        counts = pd.Series(r.item_counts, index=r.items)
    if counts is None:
        return np.zeros(len(items), dtype=np.int64)
    if isinstance(counts, pd.Series):
        return counts.reindex(items.index, fill_value=0).to_numpy(dtype=np.int64)
    arr = np.asarray(counts, dtype=np.int64)
    if arr.shape != (len(items),):
        raise ValueError(f"counts has shape {arr.shape}; expected one count per item ({len(items)})")
    return arr


def find_items(dataset: Dataset | pd.DataFrame, query: str, n: int = 10, counts: Any = None) -> pd.DataFrame:
    """Items whose title contains ``query`` (case and punctuation ignored), best matches first.

    Ranking: title equal to the query (with or without its year; "Lion King" and "The Lion King"
    both equal "Lion King, The (1994)"), then titles starting with it, then the query at a word
    start, then anywhere; ties go to the more-rated item (``counts``, a Series of ratings per item
    id, or a Dataset's own ratings), then the title. Returns ``title``, ``genres``, ``year``
    indexed by item id.
    """
    items = _item_table(dataset)
    q = _normalized_query(query)
    order = pd.DataFrame({"rank": _title_ranks(items, q), "pop": -_item_counts(dataset, items, counts),
                          "title": items["title"].fillna("").astype(str).to_numpy()}, index=items.index)
    order = order[order["rank"] < 4].sort_values(["rank", "pop", "title"], kind="stable")
    cols = [c for c in ("title", "genres", "year") if c in items.columns]
    return items.loc[order.index[: max(int(n), 0)], cols]


class TitleMatch(NamedTuple):
    """The item a title text resolved to (:func:`match_title`)."""

    item: Any
    title: str
    ratings: int
    exact: bool


class AmbiguousTitleError(ValueError):
    """Several items match a title text about equally; ``candidates`` lists them (best first)."""

    def __init__(self, message: str, candidates: pd.DataFrame) -> None:
        super().__init__(message)
        self.candidates = candidates


#: the most-rated match wins when it has at least this many times the ratings of the runner-up
TITLE_DOMINANCE = 2.0


def match_title(dataset: Dataset | pd.DataFrame, text: str, counts: Any = None, max_candidates: int = 5) -> TitleMatch:
    """Resolve a title typed by a person to one item.

    Case, punctuation and a leading or trailing article are ignored ("the lion king" = "Lion King,
    The (1994)"). The candidates are the exact matches (the whole title, with or without its
    year) if there are any, else the titles holding the text at a word start, else anywhere.
    One candidate wins outright; among several, the most-rated (``counts``: ratings per item id,
    or a Dataset's ratings) wins when it has at least ``TITLE_DOMINANCE`` (2) times the ratings
    of the runner-up. Otherwise raises :class:`AmbiguousTitleError` listing the candidates
    (add the year or more words); no match at all raises ``ValueError``.
    """
    items = _item_table(dataset)
    q = _normalized_query(text)
    rank = _title_ranks(items, q)
    n_ratings = _item_counts(dataset, items, counts)
    tier = np.where(rank == 0, 0, np.where(rank <= 2, 1, np.where(rank == 3, 2, 3)))
    if not (tier < 3).any():
        raise ValueError(f"no title matches {text!r}")
    pick = np.flatnonzero(tier == tier.min())
    pick = pick[np.argsort(-n_ratings[pick], kind="stable")]
    top = int(n_ratings[pick[0]])
    if len(pick) > 1 and not (top > 0 and top >= TITLE_DOMINANCE * n_ratings[pick[1]]):
        shown = pick[:max_candidates]
        cands = pd.DataFrame({"title": items["title"].to_numpy()[shown], "ratings": n_ratings[shown]},
                             index=items.index[shown])
        listed = "; ".join(f"{t} ({c:,} ratings)" for t, c in zip(cands["title"], cands["ratings"]))
        more = f" and {len(pick) - len(shown)} more" if len(pick) > len(shown) else ""
        raise AmbiguousTitleError(f"{text!r} is ambiguous: {len(pick)} titles match and none has twice the ratings "
                                  f"of the next: {listed}{more}; be more specific (e.g. add the year)", cands)
    k = int(pick[0])
    item = items.index[k]
    return TitleMatch(item.item() if hasattr(item, "item") else item, str(items["title"].iloc[k]), top, bool(tier[k] == 0))


def read_items(path: str | os.PathLike, encoding: str | None = None) -> pd.DataFrame:
    """An item table from a file in a MovieLens format: ``movies.csv`` (header
    ``movieId,title,genres``, genres joined by ``|``), ``movies.dat`` (``::``-separated) or
    ``u.item`` (``|``-separated, genre flags). Returns ``title``, ``genres`` (lists), ``year``
    indexed by item id, ready for ``model.attach_items``.

    ``encoding=None`` reads each format as GroupLens ships it: ``movies.csv`` UTF-8, ``u.item``
    and ``movies.dat`` Latin-1. A ``.dat``/``u.item`` file that is valid UTF-8 with non-ASCII
    text is ambiguous (Latin-1 would turn "é" into "Ã©", silently) and is an error asking for
    ``encoding=``; any byte invalid in the encoding used is an error too."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file not found (or not a file): {path}")
    template = "ml-100k" if path.name == "u.item" else "ml-1m" if path.suffix == ".dat" else "ml-latest-small"
    from dataclasses import replace

    info = replace(DATASETS[template], items_file=path.name)
    if encoding is None and info.encoding != "utf-8":
        raw = path.read_bytes()
        if not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                pass  # not UTF-8: Latin-1, as GroupLens ships this format
            else:
                raise DataError(f"this {path.name} is valid UTF-8 with non-ASCII text, but GroupLens ships the format "
                                f"in Latin-1: pass encoding='utf-8' (or 'latin-1') to say which", source=str(path))
    elif encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ValueError(f"encoding must be the name of a text encoding, not {encoding!r}") from None
        info = replace(info, encoding=encoding)
    return _read_items(path.parent, info)
