"""The bridge's losses: factor regression and BPR ranking (:func:`training.bridge.train_bridge` mixes them).

- :func:`regression_loss` squared error to the ALS factors, relative to the targets' spread, plus
  an optional cosine term.
- :func:`ranking_loss` BPR over (user, positive item, negative items) triples scored with the
  users' ALS factors against the items' *predicted* factors (or the negatives' given factors, see
  ``BridgeConfig.negatives``), so predicted factors rank well for real users, not just fit in L2.

torch is imported inside the functions.
"""

from __future__ import annotations


def regression_loss(pred, target, cosine_weight: float = 0.0, target_ms: float | None = None):
    """Squared error to the ALS factors, relative to the targets' mean squared norm.

    ``mean_i ||pred_i - target_i||^2 / target_ms`` (+ ``cosine_weight * mean_i (1 - cos_i)``).
    Dividing by ``target_ms`` (the mean squared norm of the training targets; default: of this
    batch's) makes the loss ~1 for a zero prediction whatever the factors' scale, so it can be
    mixed with the ranking loss without retuning.

    pred, target : (b, f) tensors. Returns a scalar tensor.
    """
    import torch

    se = ((pred - target) ** 2).sum(dim=1)
    ms = target_ms if target_ms is not None else float((target**2).sum(dim=1).mean().clamp_min(1e-12))
    loss = se.mean() / ms
    if cosine_weight > 0:
        cos = torch.nn.functional.cosine_similarity(pred, target, dim=1, eps=1e-8)
        loss = loss + cosine_weight * (1.0 - cos).mean()
    return loss


def ranking_loss(users, positives, negatives, valid=None, scale: float = 1.0):
    """BPR: ``-log sigmoid((u . p - u . n) / scale)`` averaged over valid (triple, negative) pairs.

    Parameters
    ----------
    users : (b, f) tensor, ALS user factors
    positives : (b, f) tensor, factors of an item each user interacted with
    negatives : (b, k, f) tensor, factors of items the user did not interact with
    valid : (b, k) bool tensor, optional; False drops a pair (a sampled "negative" that is in fact
        one of the user's items)
    scale : float, the score unit

    Returns a scalar tensor.
    """
    import torch

    s_pos = (users * positives).sum(dim=-1, keepdim=True)  # (b, 1)
    s_neg = torch.einsum("bf,bkf->bk", users, negatives)  # (b, k)
    loss = -torch.nn.functional.logsigmoid((s_pos - s_neg) / scale)
    if valid is None:
        return loss.mean()
    w = valid.to(loss.dtype)
    return (loss * w).sum() / w.sum().clamp_min(1.0)
