"""Fusion of per-modality feature blocks into one vector per item.

Every block (``audio``, ``video_cnn``, ``video_desc`` ...) goes through the same two steps before
blocks are combined:

1. **Standardisation** (z-score per dimension) with the mean and standard deviation of the items
   that HAVE the block's modality (``ItemFeatures.mask_of(block)``). Rows without the modality never
   enter the statistics. A dimension with (near) zero spread gets scale 1, so it becomes 0.
2. **L2 normalisation** of each row of the standardised block, so every present block has unit
   norm whatever its dimension: a 512-d CNN block and a 40-d descriptor block weigh the same.

**Missing modalities (the imputation rule).** A row whose modality is missing is imputed by the
zero vector *after standardisation*, i.e. by the modality's centroid (the mean of the items that
have it) expressed in standardised coordinates. L2 normalisation leaves it at zero, so the block
of a missing modality contributes nothing to dot products or distances: neutral, not "black
frame" or "silence". The row stays flagged: the masks of the returned ``ItemFeatures`` are those
of the input, and ``mask_of("fused")`` is False only for rows with no modality at all.

Methods
-------
``concat``
    The normalised blocks side by side. Each present block has norm 1; a fused row's norm is
    ``sqrt(number of present blocks)``.
``weighted``
    As ``concat`` but block b is multiplied by ``weights[b]`` (>= 0), so its norm in the fused
    vector is exactly ``weights[b]`` for a present row (0 for a missing one): modality importance
    is explicit. Weights may name a block or a modality (``"video"`` applies to every video block;
    a block name wins over its modality). Unnamed blocks keep weight 1.
``pca``
    The (weighted, when weights are given) concatenation projected by scikit-learn's PCA onto
    ``dim`` components (default 128, capped by the number of fit rows and the input size).
    PCA is **fit on the items that have every modality** (the "complete" rows), so the principal
    axes describe real media, not imputation artefacts; every row, including imputed ones, is
    then projected with the same axes (so a row with no modality at all gets the projection of
    the all-centroid input, not zeros; its masks say so). When fewer than 2 complete rows exist (a catalog without
    audio, say) the fit falls back to the rows with at least one modality, with a warning, and the
    provenance records ``fit_rows="any"``.

**One modality alone** (``GET /items/{id}/similar?by=audio``): :func:`modality_vectors` gives the
blocks of one modality the same standardisation and normalisation, without the other blocks.

The fitted statistics travel: :meth:`Fusion.state` returns JSON metadata plus numpy arrays (no
pickle) and :meth:`Fusion.from_state` rebuilds the transform, so serving can fuse a new item's
blocks with :meth:`Fusion.transform_rows` exactly as the training items were fused.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.item_features import ItemFeatures
from recsys.errors import ConfigError, DataError, NotFittedError

FUSION_VERSION = "1"
FUSION_METHODS = ("concat", "weighted", "pca")
PCA_FIT_ROWS = ("complete", "any")
DEFAULT_PCA_DIM = 128
FUSION_JSON = "fusion.json"
FUSION_NPZ = "fusion.npz"

IMPUTATION_RULE = (
    "missing block = zero vector after per-block standardisation (the modality centroid of the "
    "items that have it); stays zero after L2 normalisation; rows flagged by the has_<modality> masks"
)

_STD_FLOOR = 1e-8  # a dimension with less spread than this is constant: scale 1, value 0
_NORM_FLOOR = 1e-12  # a standardised row this close to the centroid is left at zero


@dataclass(frozen=True)
class FusionConfig:
    """How to fuse feature blocks.

    Parameters
    ----------
    method : {"concat", "weighted", "pca"}
        See the module docstring.
    weights : mapping of str to float, optional
        Per-block (or per-modality) weights, >= 0. Required by ``weighted``; optional for ``pca``
        (applied before the projection); not allowed for ``concat``.
    dim : int, optional
        Output size of ``pca`` (default 128, capped by the data). Only for ``pca``.
    blocks : sequence of str, optional
        Blocks to fuse, in this order. Default: every block of the features, in their order.
    pca_fit : {"complete", "any"}
        Rows PCA is fit on: items with every modality (default) or with at least one.
    seed : int
        Random state handed to PCA (the full SVD used is deterministic anyway).
    """

    method: str = "concat"
    weights: Mapping[str, float] | None = None
    dim: int | None = None
    blocks: tuple[str, ...] | None = None
    pca_fit: str = "complete"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ConfigError(f"unknown fusion method {self.method!r}; choose one of {FUSION_METHODS}")
        if self.weights is not None:
            if self.method == "concat":
                raise ConfigError(
                    "fusion method 'concat' takes no weights; use method='weighted' to weight blocks"
                )
            clean = {}
            for name, w in dict(self.weights).items():
                try:
                    w = float(w)
                except (TypeError, ValueError):
                    raise ConfigError(f"fusion weight of {name!r} is not a number: {w!r}") from None
                if not np.isfinite(w) or w < 0:
                    raise ConfigError(f"fusion weight of {name!r} must be finite and >= 0, got {w}")
                clean[str(name)] = w
            object.__setattr__(self, "weights", clean)
        elif self.method == "weighted":
            raise ConfigError(
                "fusion method 'weighted' needs weights, e.g. weights={'audio': 1.0, 'video': 0.5}"
            )
        if self.dim is not None:
            if self.method != "pca":
                raise ConfigError(f"dim applies to method='pca' only (method is {self.method!r})")
            if int(self.dim) != self.dim or self.dim < 1:
                raise ConfigError(f"pca dim must be a positive integer, got {self.dim!r}")
            object.__setattr__(self, "dim", int(self.dim))
        if self.blocks is not None:
            blocks = (self.blocks,) if isinstance(self.blocks, str) else tuple(self.blocks)
            if not blocks:
                raise ConfigError("fusion blocks must name at least one block")
            if len(set(blocks)) != len(blocks):
                raise ConfigError(f"fusion blocks repeat a name: {list(blocks)}")
            object.__setattr__(self, "blocks", blocks)
        if self.pca_fit not in PCA_FIT_ROWS:
            raise ConfigError(f"pca_fit must be one of {PCA_FIT_ROWS}, got {self.pca_fit!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings."""
        d = asdict(self)
        d["blocks"] = None if self.blocks is None else list(self.blocks)
        d["weights"] = None if self.weights is None else dict(self.weights)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FusionConfig":
        d = dict(d)
        if d.get("blocks") is not None:
            d["blocks"] = tuple(d["blocks"])
        return cls(**d)


class Fusion:
    """Fitted per-block standardisation + normalisation + combination.

    Parameters
    ----------
    config : FusionConfig, optional

    Attributes (after :meth:`fit`)
    ------------------------------
    blocks_ : tuple of str
        Fused blocks in column order.
    block_masks_ : dict
        Block -> modality mask name.
    dims_ : dict
        Block -> input dimension.
    mean_, scale_ : dict of (d,) float64
        Standardisation statistics per block (from present rows only).
    weights_ : dict of float
        The weight each block is multiplied by (1.0 for ``concat``).
    n_present_ : dict of int
        Rows that had the block's modality at fit time.
    components_ : (dim, D_in) float64 or None
        PCA axes (``pca`` only); ``pca_mean_`` (D_in,) is the centring vector.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config if config is not None else FusionConfig()

    # ------------------------------------------------------------------ fitting
    def fit(self, features: ItemFeatures) -> "Fusion":
        """Learn the statistics (and PCA axes) from ``features``; returns self."""
        cfg = self.config
        blocks = cfg.blocks if cfg.blocks is not None else tuple(features.blocks)
        if not blocks:
            raise DataError("these features have no blocks to fuse")
        unknown = [b for b in blocks if b not in features.blocks]
        if unknown:
            raise DataError(f"cannot fuse unknown blocks {unknown}; available: {sorted(features.blocks)}")
        block_masks = {b: features.block_masks[b] for b in blocks}
        weights = self._resolve_weights(blocks, block_masks)

        mean, scale, n_present = {}, {}, {}
        for b in blocks:
            x = features.blocks[b]
            m = features.mask_of(b)
            n_present[b] = int(m.sum())
            if n_present[b] == 0:
                warnings.warn(
                    f"feature block {b!r}: no item has modality {block_masks[b]!r}; every row of it "
                    "is imputed (zero) and it adds nothing to the fused vectors",
                    UserWarning,
                    stacklevel=2,
                )
                mean[b] = np.zeros(x.shape[1])
                scale[b] = np.ones(x.shape[1])
                continue
            mean[b], scale[b] = block_stats(x, m)
        if not any(n_present.values()):
            raise DataError(
                f"no item has any of the modalities of blocks {list(blocks)}; nothing to fit fusion on "
                "(did every file fail extraction? see items.parquet 'status'/'error')"
            )

        self.blocks_ = tuple(blocks)
        self.block_masks_ = block_masks
        self.dims_ = {b: int(features.blocks[b].shape[1]) for b in blocks}
        self.mean_, self.scale_, self.weights_, self.n_present_ = mean, scale, weights, n_present
        self.n_items_fit_ = int(features.n_items)
        self.components_ = self.pca_mean_ = self.explained_variance_ratio_ = None
        self.pca_fit_rows_ = None
        self.n_fit_pca_ = 0

        if cfg.method == "pca":
            self._fit_pca(features)
        return self

    def _resolve_weights(self, blocks: Sequence[str], block_masks: Mapping[str, str]) -> dict[str, float]:
        given = self.config.weights or {}
        known = set(blocks) | set(block_masks.values())
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"fusion weights name unknown blocks/modalities {unknown}; blocks are {list(blocks)}, "
                f"modalities {sorted(set(block_masks.values()))}"
            )
        out = {}
        for b in blocks:
            if b in given:
                out[b] = given[b]
            elif block_masks[b] in given:
                out[b] = given[block_masks[b]]
            else:
                out[b] = 1.0
        return out

    def _fit_pca(self, features: ItemFeatures) -> None:
        from sklearn.decomposition import PCA

        cfg = self.config
        masks = np.stack([features.mask_of(b) for b in self.blocks_], axis=1)
        informative = np.array([self.n_present_[b] > 0 for b in self.blocks_])
        complete = masks[:, informative].all(axis=1)
        anyrow = masks.any(axis=1)
        fit_rows, rows = cfg.pca_fit, (complete if cfg.pca_fit == "complete" else anyrow)
        if fit_rows == "complete" and complete.sum() < 2:
            warnings.warn(
                f"PCA fusion: only {int(complete.sum())} item(s) have every modality; fitting the "
                f"projection on the {int(anyrow.sum())} items with at least one (missing blocks imputed)",
                UserWarning,
                stacklevel=3,
            )
            fit_rows, rows = "any", anyrow
        n_fit = int(rows.sum())
        if n_fit < 2:
            raise DataError(
                f"PCA fusion needs at least 2 items with media, found {n_fit}; use method='concat'"
            )
        y = self._combine(
            {b: features.blocks[b][rows] for b in self.blocks_},
            {b: features.mask_of(b)[rows] for b in self.blocks_},
        )
        d_in = y.shape[1]
        cap = min(n_fit, d_in)
        if cfg.dim is None:
            k = min(DEFAULT_PCA_DIM, cap)
        else:
            k = cfg.dim
            if k > cap:
                warnings.warn(
                    f"PCA fusion: dim={k} exceeds min(fit rows={n_fit}, input dim={d_in}); using {cap}",
                    UserWarning,
                    stacklevel=3,
                )
                k = cap
        pca = PCA(n_components=k, svd_solver="full", random_state=cfg.seed).fit(y)
        self.components_ = pca.components_.astype(np.float64)
        self.pca_mean_ = pca.mean_.astype(np.float64)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.astype(np.float64)
        self.pca_fit_rows_ = fit_rows
        self.n_fit_pca_ = n_fit

    # ------------------------------------------------------------------ transforming
    def _check_fitted(self) -> None:
        if not hasattr(self, "blocks_"):
            raise NotFittedError("this Fusion is not fitted; call fit(features) or Fusion.from_state(...)")

    @property
    def dim(self) -> int:
        """Size of the fused vector."""
        self._check_fitted()
        if self.components_ is not None:
            return int(self.components_.shape[0])
        return int(sum(self.dims_.values()))

    def _combine(self, blocks: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> np.ndarray:
        """Standardise, normalise, impute and weight each block; concatenate. (n, sum d) float64."""
        parts = []
        for b in self.blocks_:
            x = np.asarray(blocks[b], dtype=np.float64)
            m = np.asarray(masks[b], dtype=bool)
            parts.append(_standard_unit(x, m, self.mean_[b], self.scale_[b]) * self.weights_[b])
        return np.concatenate(parts, axis=1)

    def _project(self, y: np.ndarray) -> np.ndarray:
        if self.components_ is not None:
            y = (y - self.pca_mean_) @ self.components_.T
        return y.astype(np.float32)

    def transform(self, features: ItemFeatures) -> ItemFeatures:
        """A copy of ``features`` with ``.fused`` (n_items, dim) float32 and fusion provenance."""
        self._check_fitted()
        blocks, masks = {}, {}
        for b in self.blocks_:
            if b not in features.blocks:
                raise DataError(f"features lack block {b!r} that this fusion was fit with")
            blocks[b] = features.blocks[b]
            masks[b] = features.mask_of(b)
        fused = self.transform_rows(blocks, masks)
        return features.with_fused(fused, provenance={"fusion": self.provenance()})

    def fit_transform(self, features: ItemFeatures) -> ItemFeatures:
        """``fit(features).transform(features)``."""
        return self.fit(features).transform(features)

    def transform_rows(
        self,
        blocks: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray | Sequence[bool]] | None = None,
    ) -> np.ndarray:
        """Fuse raw block rows of new (or known) items with the fitted statistics.

        Parameters
        ----------
        blocks : mapping of block name to (n, d) array (a (d,) array is one row)
            Raw extractor output. A block may be absent when no row has it.
        masks : mapping of str to (n,) bool, optional
            Presence per block name or per modality name (block name wins). Default: a block given
            in ``blocks`` is present for every row, an absent one is missing. Values of missing rows
            are ignored (they may be NaN).

        Returns
        -------
        fused : (n, dim) float32
            Row i equals the fused row an identical training item got.
        """
        self._check_fitted()
        masks = dict(masks or {})
        arrays: dict[str, np.ndarray] = {}
        n = None
        for b, x in blocks.items():
            if b not in self.dims_:
                continue  # extra blocks (not fused) are allowed and ignored
            x = np.asarray(x, dtype=np.float64)
            if x.ndim == 1:
                x = x[None, :]
            if x.ndim != 2 or x.shape[1] != self.dims_[b]:
                raise DataError(f"block {b!r} has shape {x.shape}, expected (n, {self.dims_[b]})")
            if n is not None and x.shape[0] != n:
                raise DataError(f"blocks have different row counts ({n} and {x.shape[0]} for {b!r})")
            n = x.shape[0]
            arrays[b] = x
        for mv in masks.values():
            mv = np.atleast_1d(np.asarray(mv))
            if n is None:
                n = mv.shape[0]
            if mv.shape != (n,):
                raise DataError(f"mask has shape {mv.shape}, expected ({n},)")
        if n is None:
            raise DataError("transform_rows needs at least one block or mask to know the row count")
        row_masks: dict[str, np.ndarray] = {}
        for b in self.blocks_:
            key = b if b in masks else self.block_masks_[b]
            if key in masks:
                m = np.atleast_1d(np.asarray(masks[key], dtype=bool))
            else:
                m = np.full(n, b in arrays)
            if b not in arrays:
                if m.any():
                    raise DataError(f"mask says rows have block {b!r} but no values were given for it")
                arrays[b] = np.zeros((n, self.dims_[b]))
            elif not np.isfinite(arrays[b][m]).all():
                raise DataError(f"block {b!r} has NaN or infinite values in rows marked present")
            row_masks[b] = m
        return self._project(self._combine(arrays, row_masks))

    # ------------------------------------------------------------------ provenance and state
    def provenance(self) -> dict[str, Any]:
        """JSON-able description: method, blocks, weights, dims, column offsets and statistics."""
        self._check_fitted()
        offsets, start = {}, 0
        for b in self.blocks_:
            offsets[b] = [start, start + self.dims_[b]]
            start += self.dims_[b]
        prov: dict[str, Any] = {
            "method": self.config.method,
            "version": FUSION_VERSION,
            "config": self.config.to_dict(),
            "blocks": list(self.blocks_),
            "block_masks": dict(self.block_masks_),
            "dims": dict(self.dims_),
            "weights": dict(self.weights_),
            "fused_dim": self.dim,
            "imputation": IMPUTATION_RULE,
            "n_items_fit": self.n_items_fit_,
            "stats": {
                b: {
                    "n_present": self.n_present_[b],
                    "mean_norm": float(np.linalg.norm(self.mean_[b])),
                    "median_std": float(np.median(self.scale_[b])),
                }
                for b in self.blocks_
            },
        }
        if self.components_ is None:
            prov["offsets"] = offsets  # where each block sits in the fused vector
        else:
            prov["pca"] = {
                "input_offsets": offsets,
                "n_components": int(self.components_.shape[0]),
                "fit_rows": self.pca_fit_rows_,
                "n_fit": self.n_fit_pca_,
                "explained_variance_ratio_sum": float(self.explained_variance_ratio_.sum()),
            }
        return prov

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the transform: ``{"meta": json-able dict, "arrays": {name: ndarray}}``."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        for b in self.blocks_:
            arrays[f"mean__{b}"] = self.mean_[b]
            arrays[f"scale__{b}"] = self.scale_[b]
        if self.components_ is not None:
            arrays["pca__components"] = self.components_
            arrays["pca__mean"] = self.pca_mean_
            arrays["pca__explained_variance_ratio"] = self.explained_variance_ratio_
        meta = {
            "version": FUSION_VERSION,
            "config": self.config.to_dict(),
            "blocks": list(self.blocks_),
            "block_masks": dict(self.block_masks_),
            "dims": dict(self.dims_),
            "weights": dict(self.weights_),
            "n_present": dict(self.n_present_),
            "n_items_fit": self.n_items_fit_,
            "pca_fit_rows": self.pca_fit_rows_,
            "n_fit_pca": self.n_fit_pca_,
        }
        return {"meta": meta, "arrays": arrays}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Fusion":
        """Rebuild a fitted Fusion from :meth:`state` output (or the files of :meth:`save`)."""
        try:
            meta, arrays = state["meta"], state["arrays"]
            if meta.get("version") != FUSION_VERSION:
                raise DataError(
                    f"fusion state version {meta.get('version')!r} differs from {FUSION_VERSION!r}; refit fusion"
                )
            self = cls(FusionConfig.from_dict(meta["config"]))
            self.blocks_ = tuple(meta["blocks"])
            self.block_masks_ = dict(meta["block_masks"])
            self.dims_ = {b: int(d) for b, d in meta["dims"].items()}
            self.weights_ = {b: float(w) for b, w in meta["weights"].items()}
            self.n_present_ = {b: int(v) for b, v in meta["n_present"].items()}
            self.n_items_fit_ = int(meta["n_items_fit"])
            self.pca_fit_rows_ = meta.get("pca_fit_rows")
            self.n_fit_pca_ = int(meta.get("n_fit_pca", 0))
            self.mean_ = {b: np.asarray(arrays[f"mean__{b}"], dtype=np.float64) for b in self.blocks_}
            self.scale_ = {b: np.asarray(arrays[f"scale__{b}"], dtype=np.float64) for b in self.blocks_}
            if "pca__components" in arrays:
                self.components_ = np.asarray(arrays["pca__components"], dtype=np.float64)
                self.pca_mean_ = np.asarray(arrays["pca__mean"], dtype=np.float64)
                self.explained_variance_ratio_ = np.asarray(
                    arrays["pca__explained_variance_ratio"], dtype=np.float64
                )
            else:
                self.components_ = self.pca_mean_ = self.explained_variance_ratio_ = None
        except KeyError as e:
            raise DataError(f"fusion state is incomplete: missing {e}") from None
        for b in self.blocks_:
            if self.mean_[b].shape != (self.dims_[b],) or self.scale_[b].shape != (self.dims_[b],):
                raise DataError(f"fusion state statistics of block {b!r} do not match dim {self.dims_[b]}")
        return self

    def save(self, directory: str | Path) -> Path:
        """Write ``DIR/fusion.json`` (meta) and ``DIR/fusion.npz`` (arrays); returns the directory."""
        st = self.state()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / FUSION_NPZ, **st["arrays"])
        (d / FUSION_JSON).write_text(json.dumps(st["meta"], indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "Fusion":
        """Read a Fusion written by :meth:`save` (also found in ``avrec features`` output folders)."""
        d = Path(directory)
        if not (d / FUSION_JSON).exists() or not (d / FUSION_NPZ).exists():
            raise DataError(f"{d} has no saved fusion ({FUSION_JSON} + {FUSION_NPZ})")
        meta = json.loads((d / FUSION_JSON).read_text())
        with np.load(d / FUSION_NPZ, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_state({"meta": meta, "arrays": arrays})

    def __repr__(self) -> str:
        fitted = f", dim={self.dim}" if hasattr(self, "blocks_") else ", unfitted"
        return f"Fusion(method={self.config.method!r}{fitted})"


def fuse(
    features: ItemFeatures,
    method: str = "concat",
    weights: Mapping[str, float] | None = None,
    dim: int | None = None,
    blocks: Sequence[str] | None = None,
    *,
    config: FusionConfig | None = None,
) -> ItemFeatures:
    """Fit a :class:`Fusion` on ``features`` and return a copy with ``.fused`` set.

    Parameters
    ----------
    features : ItemFeatures
        Blocks and masks aligned to the item map.
    method, weights, dim, blocks
        See :class:`FusionConfig` (ignored when ``config`` is given).
    config : FusionConfig, optional

    Returns
    -------
    ItemFeatures
        Same item map, blocks and masks; ``fused`` (n_items, D) float32; provenance["fusion"].
        To fuse new items later, use ``Fusion(config).fit(features)`` and keep the Fusion.
    """
    if config is None:
        config = FusionConfig(
            method=method, weights=weights, dim=dim, blocks=None if blocks is None else tuple(blocks)
        )
    return Fusion(config).fit_transform(features)


# ---------------------------------------------------------------------- one modality alone
def block_stats(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics of one block, from the rows that have its modality.

    Parameters
    ----------
    x : (n, d) array
    mask : (n,) bool
        Rows with the modality (at least one).

    Returns
    -------
    mean, scale : (d,) float64
        Mean and standard deviation of the present rows; a (near) constant dimension gets scale 1.
    """
    xp = np.asarray(x, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    if xp.shape[0] == 0:
        return np.zeros(np.shape(x)[1]), np.ones(np.shape(x)[1])
    std = xp.std(axis=0)
    return xp.mean(axis=0), np.where(std > _STD_FLOOR, std, 1.0)


def _standard_unit(x: np.ndarray, mask: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n, d) float64: present rows z-scored with (mean, scale) and L2-normalised; the rest zero."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    z = np.zeros_like(x)
    if m.any():
        zp = (x[m] - mean) / scale
        norm = np.linalg.norm(zp, axis=1, keepdims=True)
        z[m] = np.where(norm > _NORM_FLOOR, zp / np.maximum(norm, _NORM_FLOOR), 0.0)
    return z


def modality_vectors(
    features: ItemFeatures,
    blocks: Sequence[str],
    fusion: Fusion | None = None,
    reference: ItemFeatures | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit item vectors of some blocks alone (one modality), standardised as fusion does.

    Each block is z-scored per dimension and L2-normalised exactly as inside the fused vector
    (step 1 and 2 of the module docstring), the blocks are put side by side with equal weight and
    each row is L2-normalised again. Raw blocks must not be compared by cosine directly: their
    dimensions differ in scale by orders of magnitude (the audio statistics vector mixes MFCCs,
    kHz and dB), so a few dimensions would decide every similarity. On 100 ESC-50 clips plus 11
    videos the twin of a clip (the other clip of its class) ranked 22.0 on average among 110 by
    centred raw audio and 15.3 by this (15.1 by the fused vector; ``bench/bench_twin_rank.py``).

    Parameters
    ----------
    features : ItemFeatures
        Items to give vectors to.
    blocks : sequence of str
        Blocks of ``features`` to use (e.g. every audio block).
    fusion : Fusion, optional
        A fitted fusion: the blocks it fused use its statistics, so vectors of items added later
        (serving) are comparable with the catalog's.
    reference : ItemFeatures, optional
        Where the statistics of blocks the fusion does not hold come from (default ``features``;
        pass the catalog when ``features`` is a single query item).

    Returns
    -------
    vectors : (n_items, sum d) float32
        Unit rows; zero for an item without any of the blocks' modalities.
    has : (n_items,) bool
        Items with at least one of the blocks (and a nonzero vector).

    Raises
    ------
    DataError
        ``blocks`` is empty or names a block ``features`` does not have.
    """
    if not blocks:
        raise DataError("modality_vectors needs at least one block")
    reference = features if reference is None else reference
    parts, has = [], np.zeros(features.n_items, dtype=bool)
    for b in blocks:
        if b not in features.blocks:
            raise DataError(f"no feature block {b!r}; available: {sorted(features.blocks)}")
        m = features.mask_of(b)
        if fusion is not None and b in getattr(fusion, "mean_", {}):
            mean, scale = fusion.mean_[b], fusion.scale_[b]
        else:
            mean, scale = block_stats(reference.blocks[b], reference.mask_of(b))
        parts.append(_standard_unit(features.blocks[b], m, mean, scale))
        has |= m
    x = np.concatenate(parts, axis=1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    has &= norm[:, 0] > _NORM_FLOOR
    x = np.where(has[:, None], x / np.maximum(norm, _NORM_FLOOR), 0.0)
    return x.astype(np.float32), has
