"""Item content features aligned to an item id map: :class:`ItemFeatures`.

Rows follow ``item_ids``. Each named block (``audio``, ``video``, ``image``, ``audio_ssl`` ...)
is a float32 matrix with its own availability mask: missing media is explicit, never silent zeros.
An optional ``fused`` matrix is the one vector per item that models consume.

On disk (the layout written by ``avrec features`` and by split folders converted to it)::

    DIR/items.parquet      item_id, has_<mask> columns, plus any per-item info (path, status, ...)
    DIR/<block>.npy        (n_items, d) float32 per block
    DIR/fused.npy          (n_items, d) float32, optional
    DIR/features.json      {"blocks": {name: {"dim": d, "mask": mask_name}}, "provenance": {...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.interactions import IdMap
from recsys.errors import DataError

FEATURES_JSON = "features.json"
ITEMS_PARQUET = "items.parquet"


class ItemFeatures:
    """Per-item content blocks, masks, an optional fused matrix and provenance.

    Parameters
    ----------
    item_ids : sequence
        Raw item ids, one per row.
    blocks : mapping of str to (n_items, d) array
        Per-modality (or per-extractor) feature blocks.
    masks : mapping of str to (n_items,) bool, optional
        ``masks[m][i]`` says whether item i has modality m. Defaults to all True for each block.
    block_masks : mapping of block name to mask name, optional
        Which mask applies to a block (``audio_ssl`` -> ``audio``). Defaults to the block's own name.
    fused : (n_items, d) array, optional
    provenance : dict, optional
        Extractor names, versions and parameters; kept with the arrays.
    """

    def __init__(
        self,
        item_ids: Sequence | np.ndarray,
        blocks: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray] | None = None,
        *,
        block_masks: Mapping[str, str] | None = None,
        fused: np.ndarray | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.item_map = IdMap(item_ids, "item")
        n = len(self.item_map)
        self.blocks: dict[str, np.ndarray] = {}
        for name, arr in blocks.items():
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise DataError(f"feature block {name!r} has shape {arr.shape}, expected ({n}, d)")
            if not np.isfinite(arr).all():
                raise DataError(f"feature block {name!r} contains NaN or infinite values")
            self.blocks[name] = arr
        self.block_masks = {name: name for name in self.blocks}
        self.block_masks.update(block_masks or {})
        self.masks: dict[str, np.ndarray] = {}
        for name, m in (masks or {}).items():
            m = np.asarray(m, dtype=bool)
            if m.shape != (n,):
                raise DataError(f"mask {name!r} has shape {m.shape}, expected ({n},)")
            self.masks[name] = m
        for name, mask_name in self.block_masks.items():
            self.masks.setdefault(mask_name, np.ones(n, dtype=bool))
        if fused is not None:
            fused = np.asarray(fused, dtype=np.float32)
            if fused.ndim != 2 or fused.shape[0] != n:
                raise DataError(f"fused matrix has shape {fused.shape}, expected ({n}, d)")
            if not np.isfinite(fused).all():
                raise DataError("fused matrix contains NaN or infinite values")
        self.fused = fused
        self.provenance: dict[str, Any] = dict(provenance or {})

    # ------------------------------------------------------------------ access
    @property
    def item_ids(self) -> np.ndarray:
        return self.item_map.ids

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}:{v.shape[1]}" for k, v in self.blocks.items())
        fused = f", fused:{self.fused.shape[1]}" if self.fused is not None else ""
        return f"ItemFeatures({self.n_items} items; {dims}{fused})"

    def mask_of(self, block: str) -> np.ndarray:
        """Availability mask (n_items,) bool of a block (or of the fused matrix: any modality)."""
        if block == "fused":
            return np.logical_or.reduce([self.masks[m] for m in set(self.block_masks.values())])
        if block not in self.block_masks:
            raise DataError(f"no feature block {block!r}; available: {sorted(self.blocks)}")
        return self.masks[self.block_masks[block]]

    def matrix(self, name: str = "fused") -> np.ndarray:
        """The fused matrix or one block, (n_items, d) float32."""
        if name == "fused":
            if self.fused is None:
                raise DataError("these features have no fused matrix; run fusion first (features.fusion)")
            return self.fused
        if name not in self.blocks:
            raise DataError(f"no feature block {name!r}; available: {sorted(self.blocks)}")
        return self.blocks[name]

    # ------------------------------------------------------------------ derived
    def align(self, item_ids: Sequence | np.ndarray | IdMap) -> "ItemFeatures":
        """Rows reordered to another item id map.

        Items of the target map that these features lack get zero rows with every mask False
        (flagged missing, so models treat them as having no media); extra items are dropped.
        """
        target = item_ids if isinstance(item_ids, IdMap) else IdMap(item_ids, "item")
        src = self.item_map.indices(target.ids, missing="mark")
        have = src >= 0
        take = np.where(have, src, 0)

        def pick(a: np.ndarray) -> np.ndarray:
            out = a[take].copy()
            out[~have] = 0
            return out

        return ItemFeatures(
            target.ids,
            {k: pick(v) for k, v in self.blocks.items()},
            {k: v[take] & have for k, v in self.masks.items()},
            block_masks=self.block_masks,
            fused=None if self.fused is None else pick(self.fused),
            provenance=self.provenance,
        )

    def with_blocks(
        self,
        blocks: Mapping[str, np.ndarray],
        block_masks: Mapping[str, str] | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> "ItemFeatures":
        """A copy with extra (or replaced) blocks."""
        return ItemFeatures(
            self.item_ids,
            {**self.blocks, **blocks},
            self.masks,
            block_masks={**self.block_masks, **(block_masks or {})},
            fused=self.fused,
            provenance={**self.provenance, **(provenance or {})},
        )

    def with_fused(self, fused: np.ndarray, provenance: dict[str, Any] | None = None) -> "ItemFeatures":
        """A copy with a (new) fused matrix."""
        return ItemFeatures(
            self.item_ids,
            self.blocks,
            self.masks,
            block_masks=self.block_masks,
            fused=fused,
            provenance={**self.provenance, **(provenance or {})},
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, extra_columns: Mapping[str, Sequence] | None = None) -> Path:
        """Write the on-disk layout described in the module docstring; returns the directory."""
        import polars as pl

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cols: dict[str, Any] = {"item_id": self.item_ids.tolist()}
        for name, m in self.masks.items():
            cols[f"has_{name}"] = m
        for name, values in (extra_columns or {}).items():
            cols[name] = list(values)
        pl.DataFrame(cols, strict=False).write_parquet(d / ITEMS_PARQUET)
        for name, arr in self.blocks.items():
            np.save(d / f"{name}.npy", arr)
        if self.fused is not None:
            np.save(d / "fused.npy", self.fused)
        meta = {
            "blocks": {k: {"dim": int(v.shape[1]), "mask": self.block_masks[k]} for k, v in self.blocks.items()},
            "fused_dim": None if self.fused is None else int(self.fused.shape[1]),
            "provenance": self.provenance,
        }
        (d / FEATURES_JSON).write_text(json.dumps(meta, indent=2, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "ItemFeatures":
        """Read features written by :meth:`save` (or by ``avrec features``)."""
        import polars as pl

        d = Path(directory)
        meta_path = d / FEATURES_JSON
        if not meta_path.exists() or not (d / ITEMS_PARQUET).exists():
            raise DataError(
                f"{d} is not a features folder (needs {FEATURES_JSON} and {ITEMS_PARQUET}); "
                "create one with `avrec features`"
            )
        meta = json.loads(meta_path.read_text())
        items = pl.read_parquet(d / ITEMS_PARQUET)
        ids = np.asarray(items.get_column("item_id").to_list())
        if ids.dtype.kind == "U":
            ids = ids.astype(object)
        masks = {
            c[len("has_"):]: items.get_column(c).to_numpy().astype(bool)
            for c in items.columns
            if c.startswith("has_")
        }
        blocks = {}
        for name in meta["blocks"]:
            p = d / f"{name}.npy"
            if not p.exists():
                raise DataError(f"feature block file missing: {p}")
            blocks[name] = np.load(p)
        fused = np.load(d / "fused.npy") if meta.get("fused_dim") is not None else None
        return cls(
            ids,
            blocks,
            masks,
            block_masks={k: v["mask"] for k, v in meta["blocks"].items()},
            fused=fused,
            provenance=meta.get("provenance", {}),
        )
