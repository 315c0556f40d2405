"""Constraints on W kept by full-network retraining: Dale's law, no autapses and the sparsity
pattern (:func:`project_dale`), the SOC structure (:func:`project_structure`,
:func:`structure_measures`) and the stability bound (:func:`backtrack_to_bound`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.retraining.config import StructureName

__all__ = ["backtrack_to_bound", "project_dale", "project_structure", "structure_measures"]


def project_dale(W: Tensor, n_excitatory: int, mask: Tensor | None = None) -> Tensor:
    """Nearest matrix (Frobenius) obeying Dale's law on columns, no autapses, and ``mask``.

    Excitatory columns are clipped at 0 from below, inhibitory columns from above, the diagonal
    and (if given) entries where ``mask`` is False are set to zero. Returns a new tensor.
    """
    projected = torch.cat(
        [W[:, :n_excitatory].clamp(min=0.0), W[:, n_excitatory:].clamp(max=0.0)], dim=1
    )
    projected = projected * (1.0 - torch.eye(W.shape[0], dtype=W.dtype, device=W.device))
    if mask is not None:
        projected = projected * mask
    return projected


def backtrack_to_bound(W: Tensor, previous: Tensor, bound: float) -> float:
    """Move W (in place) back toward ``previous``, halving the step until W's spectral abscissa
    is at most ``bound`` (back to ``previous`` itself if 20 halvings do not do); returns the
    abscissa of the W kept. A convex combination of two matrices meeting the same linear and
    sign constraints (Dale's law, a zero pattern, row sums) meets them too.

    Args:
        W: (n, n) weights after an optimiser step and its projection.
        previous: (n, n) the admissible weights before that step.
        bound: the largest spectral abscissa allowed.
    """
    fraction = 1.0
    abscissa = spectral_abscissa(W)
    while abscissa > bound and fraction > 1e-6:
        fraction /= 2.0
        W.copy_(previous + fraction * (W - previous))
        abscissa = spectral_abscissa(W)
    if abscissa > bound:
        W.copy_(previous)
        abscissa = spectral_abscissa(W)
    return abscissa


def structure_measures(W: Tensor, n_excitatory: int) -> dict[str, float]:
    """The SOC structure of W: its row sums' range and the block-mean inhibition ratios.

    Returns:
        ``row_sum_min``, ``row_sum_max`` (kao2021 networks: -10 both) and
        ``inhibition_ratio_e`` = ``-mean(W_EI)/mean(W_EE)``, ``inhibition_ratio_i`` =
        ``-mean(W_II)/mean(W_IE)`` (hennequin2014 networks: gamma both; means over whole
        blocks, zeros included).
    """
    n_e = n_excitatory
    rows = W.detach().sum(dim=1)
    blocks = W.detach()
    ee, ei = blocks[:n_e, :n_e].mean(), blocks[:n_e, n_e:].mean()
    ie, ii = blocks[n_e:, :n_e].mean(), blocks[n_e:, n_e:].mean()
    return {
        "row_sum_min": float(rows.min()),
        "row_sum_max": float(rows.max()),
        "inhibition_ratio_e": float(-ei / ee) if float(ee) != 0 else math.nan,
        "inhibition_ratio_i": float(-ii / ie) if float(ie) != 0 else math.nan,
    }


def _bounds(W: Tensor, n_excitatory: int, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-entry lower and upper bounds of Dale's law, no autapses and ``mask``."""
    n = W.shape[0]
    inf = torch.full_like(W, math.inf)
    lower = torch.zeros_like(W)
    upper = inf.clone()
    lower[:, n_excitatory:] = -math.inf
    upper[:, n_excitatory:] = 0.0
    closed = torch.eye(n, dtype=torch.bool, device=W.device)
    if mask is not None:
        closed = closed | (mask == 0)
    lower[closed] = 0.0
    upper[closed] = 0.0
    return lower, upper


def _project_groups(
    values: Tensor, weights: Tensor, totals: Tensor, lower: Tensor, upper: Tensor
) -> Tensor:
    """Nearest point (Euclidean) to each row of ``values`` within [lower, upper] whose
    ``weights``-weighted sum is ``totals``: ``clip(v + lambda a)`` with one lambda per row,
    found by bisection and then solved exactly on the entries left inside their bounds.

    All arguments are (groups, m) except ``totals`` (groups,); weights are >= 0.
    """

    def clipped(lam: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(values + lam[:, None] * weights, lower), upper)

    def weighted_sum(lam: Tensor) -> Tensor:
        return (clipped(lam) * weights).sum(dim=1)

    spread = float(values.abs().max()) + float(totals.abs().max()) + 1.0
    scale = float(weights[weights > 0].min()) if bool((weights > 0).any()) else 1.0
    low = torch.full_like(totals, -spread / scale)
    high = torch.full_like(totals, spread / scale)
    for _ in range(64):
        if not bool((weighted_sum(low) > totals).any()):
            break
        low = torch.where(weighted_sum(low) > totals, 2 * low, low)
    for _ in range(64):
        if not bool((weighted_sum(high) < totals).any()):
            break
        high = torch.where(weighted_sum(high) < totals, 2 * high, high)
    if bool((weighted_sum(low) > totals).any() or (weighted_sum(high) < totals).any()):
        raise InvalidNetworkError(
            "the SOC structure cannot be kept: a row (block) has no free connection of the "
            "sign its sum needs (e.g. a negative row sum with no inhibitory input)"
        )
    for _ in range(100):
        middle = (low + high) / 2
        below = weighted_sum(middle) < totals
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    lam = (low + high) / 2
    # The weighted sum is piecewise linear in lambda: with the entries that are inside their
    # bounds at lambda known, one linear equation gives lambda exactly (up to rounding).
    result = clipped(lam)
    free = (result > lower) & (result < upper) & (weights > 0)
    fixed_sum = (torch.where(free, 0.0, result) * weights).sum(dim=1)
    free_sum = (torch.where(free, values, 0.0) * weights).sum(dim=1)
    norm2 = (torch.where(free, weights, 0.0) ** 2).sum(dim=1)
    exact = (totals - fixed_sum - free_sum) / norm2.clamp(min=torch.finfo(values.dtype).tiny)
    solved = free & (norm2 > 0)[:, None]
    exact_values = torch.minimum(torch.maximum(values + exact[:, None] * weights, lower), upper)
    return torch.where(solved, exact_values, result)


def project_structure(
    W: Tensor,
    n_excitatory: int,
    mask: Tensor | None,
    structure: StructureName,
    reference: Tensor,
) -> Tensor:
    """Nearest matrix (Frobenius) obeying Dale's law, no autapses, ``mask`` and ``structure``.

    Args:
        W: (n, n) weights, columns presynaptic.
        n_excitatory: the first units are excitatory.
        mask: (n, n) 1 where a connection may exist, or None.
        structure: ``"none"`` (as :func:`project_dale`), ``"kao2021_row_sums"`` (each row sums
            to ``reference``'s row sum) or ``"hennequin2014_ratios"`` (``-mean(W_EI)/mean(W_EE)``
            and ``-mean(W_II)/mean(W_IE)`` equal ``reference``'s).
        reference: (n, n) the weights whose structure is kept (before training).

    Returns:
        A new (n, n) tensor; the row sums or ratios hold to rounding (~1e-14 relative).
    """
    if structure == "none":
        return project_dale(W, n_excitatory, mask)
    lower, upper = _bounds(W, n_excitatory, mask)
    n_e = n_excitatory
    if structure == "kao2021_row_sums":
        totals = reference.sum(dim=1).to(W)
        return _project_groups(W, torch.ones_like(W), totals, lower, upper)
    # hennequin2014: mean(W_EI) + g_e mean(W_EE) = 0 on the E rows and mean(W_II) + g_i
    # mean(W_IE) = 0 on the I rows: one linear constraint per row block, with weights >= 0
    # (g / |E block| on excitatory entries, 1 / |I block| on inhibitory ones).
    ratios = structure_measures(reference, n_e)
    if not all(math.isfinite(ratios[k]) for k in ("inhibition_ratio_e", "inhibition_ratio_i")):
        raise InvalidNetworkError(
            "hennequin2014_ratios needs excitation in both row blocks of W (mean(W_EE) and "
            "mean(W_IE) nonzero) to define the ratios it keeps"
        )
    n = W.shape[0]
    projected = torch.empty_like(W)
    for rows, gamma in (
        (slice(0, n_e), ratios["inhibition_ratio_e"]),
        (slice(n_e, n), ratios["inhibition_ratio_i"]),
    ):
        block = W[rows]
        weights = torch.empty_like(block)
        weights[:, :n_e] = gamma / (block.shape[0] * n_e)
        weights[:, n_e:] = 1.0 / (block.shape[0] * (n - n_e))
        result = _project_groups(
            block.reshape(1, -1),
            weights.reshape(1, -1),
            torch.zeros(1, dtype=W.dtype, device=W.device),
            lower[rows].reshape(1, -1),
            upper[rows].reshape(1, -1),
        )
        projected[rows] = result.reshape(block.shape)
    return projected
