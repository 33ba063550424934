"""Media -> words: a ridge projection from an item's audio/video vector into the text space.

Trained on the catalog items that have both text and media, it gives every item with media a
predicted text vector, so items without any text become searchable by words and get predicted
tags. Inputs are the item's media blocks only (every block whose mask is not ``text``), fused by
their own :class:`~features.fusion.Fusion` (per-block standardisation + L2 + concat), so the text
block never predicts itself. Targets are the unit rows of the ``text`` block's dense coordinates
(:meth:`features.text.TextEncoder.coords`); predictions are returned as unit rows (their direction
is what search and tags use).

The ridge penalty is chosen by scikit-learn's ``RidgeCV`` (efficient leave-one-out over
``alphas``). The learned state is arrays only (``coef``, ``intercept``, the media fusion's
statistics): no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recsys.errors import DataError, NotFittedError
from recsys.models.content import l2_rows

TEXT_MASK = "text"
PROJECTION_JSON = "projection.json"
PROJECTION_NPZ = "projection.npz"
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
MIN_TRAIN_ITEMS = 3


def media_blocks(item_features) -> tuple[str, ...]:
    """Names of the blocks that describe media (every block whose mask is not ``text``)."""
    return tuple(b for b, m in item_features.block_masks.items() if m != TEXT_MASK)


class MediaToText:
    """Ridge regression from fused media vectors to unit text-space coordinates.

    Parameters
    ----------
    alphas : sequence of float
        Ridge penalties tried by leave-one-out cross-validation.
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> None:
        self.alphas = tuple(float(a) for a in alphas)

    def fit(self, item_features, targets: np.ndarray, has_text: np.ndarray) -> "MediaToText":
        """Learn the projection on items with text and media.

        Parameters
        ----------
        item_features : ItemFeatures
            With at least one media block.
        targets : (n_items, k) float
            Dense text coordinates (rows of items without text are ignored).
        has_text : (n_items,) bool
        """
        from sklearn.linear_model import RidgeCV

        from features.fusion import Fusion, FusionConfig

        # a modality no item has (video of an audio-only catalog) would only add imputed zeros
        blocks = tuple(b for b in media_blocks(item_features) if item_features.mask_of(b).any())
        if not blocks:
            raise DataError("media -> text projection needs at least one audio or video block")
        self.fusion_ = Fusion(FusionConfig(method="concat", blocks=blocks)).fit(item_features)
        x, has_media = self.media_vectors(item_features)
        train = np.asarray(has_text, bool) & has_media
        if train.sum() < MIN_TRAIN_ITEMS:
            raise DataError(f"media -> text projection needs at least {MIN_TRAIN_ITEMS} items with both text and "
                            f"media, found {int(train.sum())}")
        y = l2_rows(np.asarray(targets, np.float32)[train])
        ridge = RidgeCV(alphas=self.alphas).fit(x[train], y)
        self.coef_ = np.asarray(ridge.coef_, np.float32)  # (k, d_media)
        self.intercept_ = np.asarray(ridge.intercept_, np.float32)  # (k,)
        self.alpha_ = float(ridge.alpha_)
        self.n_train_ = int(train.sum())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this MediaToText is not fitted; call fit(...) or MediaToText.load(dir)")

    def media_vectors(self, item_features) -> tuple[np.ndarray, np.ndarray]:
        """``(x (n, d_media) float32, has_media (n,) bool)``: the fused media inputs of every item."""
        f = self.fusion_
        masks = {b: item_features.mask_of(b) for b in f.blocks_}
        x = f.transform_rows({b: item_features.blocks[b] for b in f.blocks_}, masks)
        has_media = np.logical_or.reduce([masks[b] for b in f.blocks_])
        return x, has_media

    def predict(self, item_features) -> tuple[np.ndarray, np.ndarray]:
        """``(p (n, k) float32 unit rows, has_media (n,) bool)``; zero rows where there is no media."""
        self._check_fitted()
        x, has_media = self.media_vectors(item_features)
        p = l2_rows(x @ self.coef_.T + self.intercept_)
        p[~has_media] = 0.0
        return p, has_media

    # ------------------------------------------------------------------ state
    def save(self, directory: str | Path) -> Path:
        """``DIR/projection.json`` + ``DIR/projection.npz`` (ridge weights and media fusion statistics)."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        st = self.fusion_.state()
        meta = {"alphas": list(self.alphas), "alpha": self.alpha_, "n_train": self.n_train_, "fusion": st["meta"]}
        (d / PROJECTION_JSON).write_text(json.dumps(meta, indent=1))
        np.savez(d / PROJECTION_NPZ, coef=self.coef_, intercept=self.intercept_,
                 **{f"fusion__{k}": v for k, v in st["arrays"].items()})
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "MediaToText":
        from features.fusion import Fusion

        d = Path(directory)
        if not (d / PROJECTION_JSON).is_file() or not (d / PROJECTION_NPZ).is_file():
            raise DataError(f"{d} has no media -> text projection ({PROJECTION_JSON} + {PROJECTION_NPZ})")
        meta = json.loads((d / PROJECTION_JSON).read_text())
        with np.load(d / PROJECTION_NPZ, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        self = cls(tuple(meta["alphas"]))
        self.fusion_ = Fusion.from_state({"meta": meta["fusion"], "arrays": {
            k.removeprefix("fusion__"): v for k, v in arrays.items() if k.startswith("fusion__")}})
        self.coef_ = arrays["coef"].astype(np.float32)
        self.intercept_ = arrays["intercept"].astype(np.float32)
        self.alpha_, self.n_train_ = float(meta["alpha"]), int(meta["n_train"])
        return self
