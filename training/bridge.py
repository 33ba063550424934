"""The content -> collaborative-filtering bridge: fit an MLP from an item's media vector to ALS factors.

A cold item (no interactions yet) has no ALS factors, so ALS cannot rank it. The bridge learns, on
the warm items, the map ``content vector -> ALS item factors`` and then gives every item with media
predicted factors that real ALS users can be scored against.

Pieces, each small and swappable; :func:`train_bridge` puts them together:

- :class:`~training.bridge_config.BridgeConfig` the settings; checkpoints carry them.
- :class:`~training.bridge_net.BridgeNet` the network, and :func:`~training.bridge_net.predict`.
- :func:`~training.bridge_losses.regression_loss` and :func:`~training.bridge_losses.ranking_loss`.
- :class:`~training.bridge_sampler.TripleSampler` item-centric (user, positive, negatives) triples.
- the loop: :func:`training.trainer.train`, the one every torch model of avrec trains with (AdamW,
  here with the one-cycle schedule; deterministic on CPU for a seed).
- the output calibration (a policy of the recommender, :mod:`recsys.models.bridge_policy`):
  predictions become unit directions times one norm, chosen so that cold items take a given share
  of the top-k slots of real users' lists (:class:`recsys.models.bridge.Bridge` runs it after
  training, as only it knows which items are cold). The norm is a buffer of the net, so
  checkpoints carry it.
- :func:`save_bridge` / :func:`load_bridge` a net and its settings in the checkpoint format of
  :mod:`training.checkpoint` (read back with ``torch.load(weights_only=True)``: no pickled objects).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from features.device import resolve_device
from recsys.errors import BundleError, ConfigError, DataError
from training.bridge_config import BridgeConfig
from training.bridge_losses import ranking_loss, regression_loss
from training.bridge_net import CPU_THREADS, build_net
from training.bridge_sampler import BridgeBatches, TripleSampler
from training.trainer import TrainerConfig, seeded, train

#: Share of the steps that warm up the one-cycle learning rate.
WARMUP = 0.1


def train_bridge(
    content: np.ndarray,
    factors: np.ndarray,
    warm_mask: np.ndarray,
    config: BridgeConfig | None = None,
    user_factors: np.ndarray | None = None,
    interactions: sp.csr_matrix | None = None,
    log: Callable[[str], None] | None = None,
):
    """Train a :class:`~training.bridge_net.BridgeNet` from content to ALS item factors.

    Parameters
    ----------
    content : (n_items, d) float32
        Content vectors of every item (rows outside ``warm_mask`` are not used).
    factors : (n_items, f) float32
        ALS item factors (targets; rows outside ``warm_mask`` are used only as ``"given"`` negatives,
        which are drawn from ``warm_mask`` too).
    warm_mask : (n_items,) bool
        The training items: those with interactions AND media.
    config : BridgeConfig, optional
    user_factors : (n_users, f) float32, optional
        ALS user factors; needed when ``config.rank_weight > 0``.
    interactions : CSR (n_users, n_items), optional
        Training interactions; needed when ``config.rank_weight > 0``.
    log : callable(str), optional
        Receives one line per epoch.

    Returns
    -------
    net : BridgeNet, in eval mode, on the CPU
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``regression``, ``ranking`` (means over the epoch's
        training items), ``seconds``.
    """
    config = (config or BridgeConfig()).validate()
    content = np.ascontiguousarray(content, dtype=np.float32)
    factors = np.ascontiguousarray(factors, dtype=np.float32)
    warm_mask = np.asarray(warm_mask, dtype=bool)
    n = content.shape[0]
    if content.ndim != 2 or factors.ndim != 2 or factors.shape[0] != n or warm_mask.shape != (n,):
        raise DataError(
            f"bridge inputs disagree: content {content.shape}, factors {factors.shape}, warm_mask "
            f"{warm_mask.shape}; expected (n_items, d), (n_items, f), (n_items,)"
        )
    if not (np.isfinite(content).all() and np.isfinite(factors).all()):
        raise DataError("bridge content or factors contain NaN or infinite values")
    train_items = np.flatnonzero(warm_mask)
    if len(train_items) < 2:
        raise DataError(f"the bridge needs at least 2 warm items with media to train on, got {len(train_items)}")
    ranking = config.rank_weight > 0
    if ranking:
        if user_factors is None or interactions is None:
            raise ConfigError("rank_weight > 0 needs user_factors= and interactions=; or set rank_weight=0")
        user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        interactions = sp.csr_matrix(interactions)
        if interactions.shape != (user_factors.shape[0], n) or user_factors.shape[1] != factors.shape[1]:
            raise DataError(
                f"interactions {interactions.shape} / user_factors {user_factors.shape} do not match "
                f"{n} items with {factors.shape[1]} factors"
            )

    device = resolve_device(config.device)
    loop = TrainerConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                         weight_decay=config.weight_decay, seed=config.seed, device=str(device),
                         threads=CPU_THREADS, grad_clip=None, schedule="one_cycle", warmup=WARMUP)
    if ranking:
        triples = TripleSampler(interactions, train_items, config.n_negatives, config.negative_sampling, config.seed)
        scale = config.score_scale or _observed_score_std(user_factors, factors, interactions, train_items)
    else:
        triples, scale = None, 1.0
    loss_fn = _loss(config, device, content, factors, user_factors if ranking else None, train_items, scale)
    # The net is built under the training seed and training continues that random stream
    # (dropout), so a seed gives the same initial weights and the same run.
    with seeded(config.seed, device):
        net = build_net(content.shape[1], factors.shape[1], config)
        net.set_statistics(content[train_items], factors[train_items])
        hist = train(net, BridgeBatches(train_items, triples, config.seed), loss_fn, loop,
                     log=log, name="bridge", seed_torch=False)
    history = [
        {"epoch": e + 1, "loss": hist.losses[e], "regression": hist.stats[e]["regression"],
         "ranking": hist.stats[e]["ranking"], "seconds": hist.epoch_seconds[e]}
        for e in range(len(hist.losses))
    ]
    return net.cpu(), history


def _loss(config: BridgeConfig, device, content: np.ndarray, factors: np.ndarray, user_factors: np.ndarray | None,
          train_items: np.ndarray, scale: float):
    """``loss_fn(net, items, users, negatives, in_batch, valid) -> (loss, stats)`` for the shared loop.

    ``(1 - rank_weight) * regression + rank_weight * ranking``; the regression alone without a
    ranking loss (or when a batch has no negatives: an in-batch batch of one item).
    """
    import torch

    x_all = torch.from_numpy(content).to(device)
    f_all = torch.from_numpy(factors).to(device)
    u_all = None if user_factors is None else torch.from_numpy(user_factors).to(device)
    target_ms = float((factors[train_items].astype(np.float64) ** 2).sum(axis=1).mean()) or 1.0
    w = config.rank_weight

    def loss_fn(net, items, users, neg, where, valid):
        if users is not None and neg.shape[1] > 0:
            b, k = neg.shape
            if config.negatives == "given":
                pred = net(x_all[items])
                neg_f = f_all[neg.reshape(-1)].view(b, k, -1)
            elif where is not None:  # in-batch: the negatives' predictions are already here
                pred = net(x_all[items])
                neg_f = pred[where.reshape(-1)].view(b, k, -1)
            else:  # one forward pass over the distinct items of the step
                uniq, inv = torch.unique(torch.cat([items, neg.reshape(-1)]), sorted=True, return_inverse=True)
                out = net(x_all[uniq])
                pred, neg_f = out[inv[:b]], out[inv[b:]].view(b, k, -1)
            reg = regression_loss(pred, f_all[items], config.cosine_weight, target_ms)
            rank = ranking_loss(u_all[users], pred, neg_f, valid, scale)
            loss = (1.0 - w) * reg + w * rank
        else:
            pred = net(x_all[items])
            reg = regression_loss(pred, f_all[items], config.cosine_weight, target_ms)
            rank = torch.zeros((), device=device)
            loss = reg
        return loss, {"regression": reg.item(), "ranking": rank.item()}

    return loss_fn


def _observed_score_std(user_factors, factors, interactions, items) -> float:
    """Standard deviation of ALS scores ``u . v`` over the observed pairs on the training items."""
    coo = sp.csr_matrix(interactions).tocoo()
    keep = np.zeros(factors.shape[0], dtype=bool)
    keep[items] = True
    sel = keep[coo.col]
    s = np.einsum("ij,ij->i", user_factors[coo.row[sel]], factors[coo.col[sel]])
    sd = float(s.std()) if len(s) > 1 else 0.0
    return sd if sd > 1e-12 else 1.0


# ---------------------------------------------------------------------- checkpoints
def save_bridge(net, config: BridgeConfig, path: str | Path) -> Path:
    """Write ``net`` and the settings it was trained with as an avrec checkpoint.

    The checkpoint (:func:`training.checkpoint.save_checkpoint`) holds the net's architecture
    (``BridgeNet.config``) and weights, calibrated norm included; ``config`` travels in its
    ``meta`` as ``"bridge_config"``.

    Returns
    -------
    Path
    """
    from training.checkpoint import save_checkpoint

    return save_checkpoint(net, path, meta={"bridge_config": dataclasses.asdict(config)})


def load_bridge(path: str | Path):
    """Rebuild ``(net, config)`` from :func:`save_bridge` output; the net is in eval mode on the CPU.

    Raises
    ------
    BundleError
        Missing, truncated or foreign file, another model's checkpoint, weights that do not match
        the architecture, settings that disagree with it, or a bridge file of the layout before the
        shared checkpoint format (refit the bridge and save it again).
    """
    from training.checkpoint import load_checkpoint

    net = load_checkpoint(path, "cpu", expected_class="BridgeNet")
    try:
        config = BridgeConfig.from_dict(net.checkpoint_meta["bridge_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: the bridge checkpoint lacks valid training settings ({e}); "
                          "write it with training.bridge.save_bridge") from e
    arch = net.config
    if (arch.hidden, arch.layers, arch.dropout, arch.skip) != (config.hidden, config.layers, config.dropout, config.skip):
        raise BundleError(f"{path}: the net's architecture {arch} disagrees with its settings {config}")
    return net, config
