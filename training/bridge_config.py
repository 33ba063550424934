"""Settings of the content -> CF bridge: :class:`BridgeConfig` (checkpoints and bundles carry it).

The bridge itself is in pieces, each small: the network (:mod:`training.bridge_net`), the losses
(:mod:`training.bridge_losses`), the triple sampler (:mod:`training.bridge_sampler`), the fit
(:func:`training.bridge.train_bridge`, on the shared loop of :mod:`training.trainer`) and the output
calibration policy of the recommender (:mod:`recsys.models.bridge_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from features.device import check_device
from recsys.errors import ConfigError

NEGATIVE_SOURCES = ("predicted", "given")
NEGATIVE_SAMPLING = ("in_batch", "uniform", "popularity")


@dataclass(frozen=True)
class BridgeConfig:
    """Settings of the bridge network and its training.

    Parameters
    ----------
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers (0 = a linear map).
    dropout : float
        Dropout after each hidden layer.
    skip : bool
        Add a linear path from input to output beside the MLP (on the TikTok data the content ->
        factor map is close to linear; the MLP then only adds what the linear map misses).
    epochs : int
        Passes over the training items.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW decoupled weight decay.
    batch_size : int
        Training items per step (each brings one triple with ``n_negatives`` negatives).
    rank_weight : float in [0, 1]
        Loss = ``(1 - rank_weight) * regression + rank_weight * ranking``. 0 is a pure regression
        to the ALS factors; 1 a pure BPR objective.
    n_negatives : int
        Negative items per (user, positive item) pair.
    cosine_weight : float
        Weight of the ``1 - cos`` term added to the regression loss.
    negatives : {"predicted", "given"}
        Which factors score the negatives in the ranking loss: the net's predictions ("predicted":
        a user's item must beat other items as predicted from their media), or the given ALS
        factors ("given": a predicted item must beat real ALS items). "given" pushes prediction
        norms up to compete and fits the training pairs rather than the content; on the planted
        test data it made cold items land with the wrong users more often, and on TikTok it was
        no better, so "predicted" is the default.
    negative_sampling : {"in_batch", "uniform", "popularity"}
        "in_batch": the other items of the step's batch (uniform over the training items, as
        batches are shuffled; with "predicted" negatives they cost no extra forward pass);
        "uniform": drawn uniformly over the training items; "popularity": proportionally to their
        number of interactions (the popular items a cold item competes with at the top of a list).
    score_scale : float or None
        The ranking loss compares ``score / score_scale``. None = the standard deviation of the
        ALS scores of the observed training pairs, so the loss is independent of the factors'
        overall scale (heavily regularised ALS has small factors).
    cold_share : float in (0, 1) or None
        Output calibration, applied after training by the recommender
        (:meth:`recsys.models.bridge.Bridge.fit`, through
        :func:`recsys.models.bridge_policy.calibrate_norm`): predictions
        become unit directions times one norm, chosen so that the cold items take this share of
        the top-``calibration_k`` slots of the training users' lists, warm items keeping their
        ALS factors. None keeps the raw regression output (norms included).
        :func:`training.bridge.train_bridge` itself never calibrates.
    calibration_k : int
        List length of that calibration.
    seed : int
    device : str
        "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1" (:mod:`features.device`).
    """

    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    skip: bool = True
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    rank_weight: float = 0.5
    n_negatives: int = 8
    cosine_weight: float = 0.0
    negatives: str = "predicted"
    negative_sampling: str = "in_batch"
    score_scale: float | None = None
    cold_share: float | None = 0.15
    calibration_k: int = 20
    seed: int = 0
    device: str = "auto"

    def validate(self) -> "BridgeConfig":
        """Raise :class:`ConfigError` for settings that cannot train; returns self."""
        if self.hidden < 1 or self.layers < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("bridge hidden, epochs and batch_size must be >= 1 and layers >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"bridge dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.rank_weight <= 1.0:
            raise ConfigError(f"bridge rank_weight must be in [0, 1], got {self.rank_weight}")
        if self.lr <= 0 or self.weight_decay < 0 or self.cosine_weight < 0:
            raise ConfigError("bridge lr must be > 0; weight_decay and cosine_weight >= 0")
        if self.n_negatives < 1:
            raise ConfigError(f"bridge n_negatives must be >= 1, got {self.n_negatives}")
        if self.negatives not in NEGATIVE_SOURCES:
            raise ConfigError(f"bridge negatives must be one of {NEGATIVE_SOURCES}, got {self.negatives!r}")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ConfigError(
                f"bridge negative_sampling must be one of {NEGATIVE_SAMPLING}, got {self.negative_sampling!r}"
            )
        if self.cold_share is not None and not 0.0 < self.cold_share < 1.0:
            raise ConfigError(f"bridge cold_share must be in (0, 1) or None, got {self.cold_share}")
        if self.calibration_k < 1:
            raise ConfigError(f"bridge calibration_k must be >= 1, got {self.calibration_k}")
        if self.score_scale is not None and not self.score_scale > 0:
            raise ConfigError(f"bridge score_scale must be > 0 or None, got {self.score_scale}")
        check_device(self.device)
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BridgeConfig":
        """Rebuild from :func:`dataclasses.asdict` output; unknown keys raise."""
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown bridge config keys {sorted(extra)}; known: {sorted(known)}")
        return cls(**d)
