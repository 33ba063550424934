"""The media catalog: item id -> media file path(s) and metadata."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from recsys.data.tables import line_of, parse_column, read_table
from recsys.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".m4a", ".aac", ".opus")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


class Catalog:
    """Items and their media files.

    Parameters
    ----------
    item_ids : sequence
        Raw item ids, unique.
    paths : sequence of path
        The primary media file of each item (a video with an audio track, or an audio-only file).
    audio_paths : sequence of path or None, optional
        A separate audio file per item where the video has none of its own (None where absent).
    metadata : polars.DataFrame, optional
        Extra columns, one row per item in the same order (title, duration, ...).
    """

    def __init__(
        self,
        item_ids: Sequence | np.ndarray,
        paths: Sequence[str | Path],
        audio_paths: Sequence[str | Path | None] | None = None,
        metadata=None,
    ) -> None:
        ids = np.asarray(item_ids)
        if ids.dtype.kind == "U":
            ids = ids.astype(object)
        if len(ids) != len(paths):
            raise DataError(f"{len(ids)} item ids but {len(paths)} paths")
        uniq, counts = np.unique(np.asarray([str(i) for i in ids]), return_counts=True)
        if (counts > 1).any():
            raise DataError(f"catalog has duplicate item ids: {uniq[counts > 1][:5].tolist()}")
        self.item_ids = ids
        self.paths = [Path(p) for p in paths]
        self.audio_paths = [None if p is None else Path(p) for p in (audio_paths or [None] * len(ids))]
        self.metadata = metadata

    def __len__(self) -> int:
        return len(self.item_ids)

    def __iter__(self) -> Iterator[tuple[object, Path]]:
        return iter(zip(self.item_ids.tolist(), self.paths))

    def __repr__(self) -> str:
        return f"Catalog({len(self)} items)"

    def path_of(self, item_id: object) -> Path:
        """Media path of one item; raises :class:`~recsys.errors.UnknownIdError`."""
        from recsys.errors import UnknownIdError

        for i, p in self:
            if i == item_id or str(i) == str(item_id):
                return p
        raise UnknownIdError(f"item {item_id!r} is not in the catalog")

    def subset(self, item_ids: Sequence) -> "Catalog":
        """The catalog restricted to ``item_ids`` (in that order)."""
        pos = {str(i): k for k, i in enumerate(self.item_ids.tolist())}
        take = []
        for i in item_ids:
            if str(i) not in pos:
                from recsys.errors import UnknownIdError

                raise UnknownIdError(f"item {i!r} is not in the catalog")
            take.append(pos[str(i)])
        meta = None if self.metadata is None else self.metadata[take]
        return Catalog(
            self.item_ids[take], [self.paths[k] for k in take], [self.audio_paths[k] for k in take], meta
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        id_column: str = "item_id",
        path_column: str = "path",
        audio_path_column: str = "audio_path",
    ) -> "Catalog":
        """Read a catalog CSV/Parquet: ``item_id``, ``path`` [, ``audio_path``], any metadata columns.

        Relative media paths resolve against the catalog file's folder. Files are not opened here:
        missing or undecodable media are reported per item by feature extraction.
        """
        import polars as pl

        path = Path(path)
        df = read_table(path, required=[id_column, path_column])
        ids = parse_column(df, id_column, "id", path)
        raw_paths = parse_column(df, path_column, "str", path)
        seen: dict[str, int] = {}
        for row, i in enumerate(ids.tolist()):
            if str(i) in seen:
                raise DataError(
                    f"duplicate item id {i!r} (first on line {line_of(df, seen[str(i)], path)})",
                    path=str(path),
                    line=line_of(df, row, path),
                    column=id_column,
                )
            seen[str(i)] = row
        base = path.parent
        paths = [_resolve(base, p) for p in raw_paths]
        audio = None
        if audio_path_column in df.columns:
            audio = [
                None if (a is None or str(a).strip() == "") else _resolve(base, a)
                for a in df.get_column(audio_path_column).cast(pl.String).to_list()
            ]
        meta = df.drop([c for c in (path_column, audio_path_column) if c in df.columns])
        return cls(ids, paths, audio, meta)

    @classmethod
    def scan(cls, folder: str | Path, extensions: Sequence[str] = MEDIA_EXTENSIONS) -> "Catalog":
        """Catalog of every media file under ``folder`` (subfolders included).

        Item ids follow the files' paths relative to ``folder`` (``/`` separated), so they are
        unique by construction:

        - a file whose stem no other file in its folder shares: the relative path without its
          extension (``clips/frog.mp4`` -> ``clips/frog``);
        - one video and one audio-only file with the same stem in the same folder
          (``example.mp4`` + ``example.wav``): ONE item ``example``, the video as ``path`` and the
          audio file as ``audio_path`` (the video's own track, if any, is then not used);
        - any other group of files sharing a stem in a folder (``frog.mp4`` + ``frog.webm``, two
          audio files, a video with two audio files): one item per file, each id keeping its
          extension (``frog.mp4``, ``frog.webm``), whichever order the files were added in.

        Every pairing and every id that keeps its extension is named in one ``UserWarning``; write
        a catalog CSV (``item_id,path[,audio_path]``) to choose otherwise.

        Parameters
        ----------
        folder : path
        extensions : sequence of str
            File extensions taken as media (case-insensitive); audio-only ones are those in
            :data:`AUDIO_EXTENSIONS`.

        Raises
        ------
        DataError
            ``folder`` is not a folder, holds no media file, or two files would still get the
            same id (``a.mp4`` beside ``a.mp4.wav``, say).
        """
        import warnings

        folder = Path(folder)
        if not folder.is_dir():
            what = "a file, not a folder: pass a catalog CSV as a file" if folder.is_file() else "not a folder"
            raise DataError(f"{folder} is {what}")
        exts = {e.lower() for e in extensions}
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise DataError(f"no media files ({', '.join(sorted(exts))}) found under {folder}")
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(f.relative_to(folder).with_suffix("").as_posix(), []).append(f)
        ids: list[str] = []
        paths: list[Path] = []
        audio: list[Path | None] = []
        paired: list[str] = []
        kept_ext: list[str] = []
        for stem, group in groups.items():
            if len(group) == 1:
                ids.append(stem)
                paths.append(group[0])
                audio.append(None)
                continue
            sounds = [f for f in group if f.suffix.lower() in AUDIO_EXTENSIONS]
            if len(group) == 2 and len(sounds) == 1:  # a picture and its soundtrack
                video = next(f for f in group if f not in sounds)
                ids.append(stem)
                paths.append(video)
                audio.append(sounds[0])
                paired.append(f"{stem} = {video.name} + {sounds[0].name}")
                continue
            for f in group:
                ids.append(f"{stem}{f.suffix}")
                paths.append(f)
                audio.append(None)
            kept_ext.append(", ".join(f"{stem}{f.suffix}" for f in group))
        uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
        if (counts > 1).any():
            clash = str(uniq[counts > 1][0])
            names = [p.relative_to(folder).as_posix() for i, p in zip(ids, paths) if i == clash]
            raise DataError(
                f"files under {folder} would share the item id {clash!r}: {', '.join(names)}; "
                "rename one, or list the items in a catalog CSV (item_id,path[,audio_path])"
            )
        notes = []
        if paired:
            notes.append(f"{len(paired)} video(s) paired with the same-stem audio file as one item "
                         f"(video + audio_path): {_some(paired)}")
        if kept_ext:
            notes.append(f"{sum(s.count(',') + 1 for s in kept_ext)} files share a name in their folder and "
                         f"keep their extension in the item id: {_some(kept_ext, sep='; ')}")
        if notes:
            warnings.warn(f"scanning {folder}: " + "; ".join(notes) + ". Write a catalog CSV "
                          "(item_id,path[,audio_path]) to choose other ids or pairs.", UserWarning, stacklevel=2)
        return cls(np.asarray(ids, dtype=object), paths, audio)  # in the files' sorted order

    def to_csv(self, path: str | Path) -> None:
        """Write ``item_id,path[,audio_path]`` plus metadata columns."""
        import polars as pl

        cols = {"item_id": self.item_ids.tolist(), "path": [str(p) for p in self.paths]}
        if any(a is not None for a in self.audio_paths):
            cols["audio_path"] = [None if a is None else str(a) for a in self.audio_paths]
        df = pl.DataFrame(cols)
        if self.metadata is not None:
            extra = self.metadata.drop([c for c in self.metadata.columns if c in cols])
            df = pl.concat([df, extra], how="horizontal")
        df.write_csv(path)


def _some(items: list[str], limit: int = 5, sep: str = ", ") -> str:
    """The first ``limit`` of ``items`` joined, and how many more there are."""
    more = f"{sep}... ({len(items) - limit} more)" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def _resolve(base: Path, p: object) -> Path:
    q = Path(str(p).strip())
    return q if q.is_absolute() else (base / q)
