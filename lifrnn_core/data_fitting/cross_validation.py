"""Honest evaluation of a fit to recordings (:func:`cross_validate`): K folds over conditions,
the maps fitted on the training conditions, and on the held-out conditions ``x*`` fitted from some
neurons and the others predicted (co-smoothing across conditions), beside the mean over training
conditions as the trivial baseline."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.data_fitting.fit import DataFitCallback, DataFitConfig, fit_to_data
from lifrnn_core.data_fitting.readout import r2_per_neuron
from lifrnn_core.dynamics import gain_function
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.fitting import initial_state_basis

__all__ = ["CrossValidation", "FoldScore", "cross_validate"]


@dataclass(frozen=True)
class FoldScore:
    """One fold of :func:`cross_validate`.

    Attributes:
        train_conditions: indices of the conditions the maps were fitted on.
        test_conditions: indices of the held-out conditions.
        heldin_neurons: neurons the held-out conditions' x* were fitted from.
        heldout_neurons: neurons scored on the held-out conditions.
        r2_train: pooled R^2 on the training conditions (every neuron).
        r2_heldout: (heldout neurons,) R^2 of each held-out neuron on the held-out conditions.
        r2_mean_predictor: (heldout neurons,) the same for the mean over training conditions.
        iterations: optimiser iterations of the training fit.
        converged: whether the training fit converged.
    """

    train_conditions: list[int]
    test_conditions: list[int]
    heldin_neurons: list[int]
    heldout_neurons: list[int]
    r2_train: float
    r2_heldout: list[float]
    r2_mean_predictor: list[float]
    iterations: int
    converged: bool


@dataclass(frozen=True)
class CrossValidation:
    """Scores of :func:`cross_validate` over its folds.

    Attributes:
        folds: each fold's scores.
        r2_train: mean over folds of the training R^2.
        r2_heldout: mean over folds of the mean held-out-neuron R^2 on held-out conditions.
        r2_heldout_per_neuron: (neurons,) each neuron's mean held-out R^2 over the folds that
            held it out (NaN if none did).
        r2_mean_predictor: the trivial predictor's ``r2_heldout``.
        predicted_heldout: (conditions, time, neurons) co-smoothed predictions (NaN where an
            entry was never held out).
    """

    folds: list[FoldScore]
    r2_train: float
    r2_heldout: float
    r2_heldout_per_neuron: list[float]
    r2_mean_predictor: float
    predicted_heldout: np.ndarray

    @classmethod
    def from_folds(cls, folds: list[FoldScore], predicted_heldout: np.ndarray) -> CrossValidation:
        """The summary of ``folds``; ``predicted_heldout`` is (conditions, time, neurons)."""
        per_neuron: dict[int, list[float]] = {}
        for fold in folds:
            for neuron, value in zip(fold.heldout_neurons, fold.r2_heldout, strict=True):
                per_neuron.setdefault(neuron, []).append(value)
        return cls(
            folds=folds,
            r2_train=float(np.mean([fold.r2_train for fold in folds])),
            r2_heldout=float(np.mean([np.mean(fold.r2_heldout) for fold in folds])),
            r2_heldout_per_neuron=[
                float(np.mean(per_neuron[i])) if i in per_neuron else math.nan
                for i in range(predicted_heldout.shape[-1])
            ],
            r2_mean_predictor=float(np.mean([np.mean(fold.r2_mean_predictor) for fold in folds])),
            predicted_heldout=predicted_heldout,
        )


def _fold_conditions(n_conditions: int, folds: int, generator: torch.Generator) -> list[Tensor]:
    order = torch.randperm(n_conditions, generator=generator)
    return [chunk.sort().values for chunk in torch.tensor_split(order, folds)]


def cross_validate(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    data: Tensor,
    *,
    n_excitatory: int,
    config: DataFitConfig,
    folds: int,
    seed: int,
    heldout_fraction: float = 0.25,
    behavior: Tensor | None = None,
    on_fold: Callable[[int, str], None] | None = None,
    callback: DataFitCallback | None = None,
) -> CrossValidation:
    """K-fold cross-validation over conditions with held-out neurons (co-smoothing).

    For each fold: the maps and the training conditions' x* are fitted on the training
    conditions (all neurons); on the held-out conditions x* is fitted from a random
    ``1 - heldout_fraction`` of the neurons with the map frozen, and the other neurons are
    predicted. The trivial predictor (each neuron's mean over training conditions at each time)
    is scored on the same entries.

    Args:
        W, h, x_sp, n_excitatory, config: as :func:`fit_to_data`.
        data: (conditions, time, neurons), at least ``folds`` conditions.
        folds: number of folds, 2 to conditions.
        seed: the fold assignment, the held-out neurons and the first guesses derive from it.
        heldout_fraction: share of neurons held out per fold (at least one).
        behavior: optional (conditions, time, 2) velocity, fitted with the training maps.
        on_fold: called with (fold index, stage message) before each fit, e.g. for progress.
        callback: passed to every fit.
    """
    n_conditions, _, n_neurons = data.shape
    if not 2 <= folds <= n_conditions:
        raise InvalidNetworkError(f"folds must be 2 to {n_conditions} (conditions), got {folds}")
    if n_neurons < 2:
        raise InvalidNetworkError("cross-validation needs at least two recorded neurons")
    generator = torch.Generator().manual_seed(seed)
    data64 = data.detach().cpu().double()
    predicted_heldout = np.full(tuple(data.shape), np.nan)
    scores: list[FoldScore] = []
    n_out = min(max(1, round(heldout_fraction * n_neurons)), n_neurons - 1)
    # The training fits share W (also in full_network, whose held-out fits use the fold's W).
    _, basis = initial_state_basis(W, x_sp, config.gain, config.n_modes)
    for index, test in enumerate(_fold_conditions(n_conditions, folds, generator)):
        train = torch.tensor(sorted(set(range(n_conditions)) - set(test.tolist())))
        neurons = torch.randperm(n_neurons, generator=generator)
        heldout, heldin = neurons[:n_out].sort().values, neurons[n_out:].sort().values
        if on_fold is not None:
            on_fold(index, f"fold {index + 1}/{folds}: fitting {len(train)} training conditions")
        fit = fit_to_data(
            W,
            h,
            x_sp,
            data[train],
            n_excitatory=n_excitatory,
            config=config,
            generator=generator,
            behavior=None if behavior is None else behavior[train],
            callback=callback,
            basis=basis,
        )
        if on_fold is not None:
            on_fold(index, f"fold {index + 1}/{folds}: initial states of {len(test)} held-out")
        heldin_readout = fit.readout.rows(heldin)
        test_fit = fit_to_data(
            fit.W,
            fit.h,
            x_sp,
            data[test][..., heldin],
            n_excitatory=n_excitatory,
            config=replace(config, mode="initial_states"),
            generator=generator,
            readout=heldin_readout,
            callback=callback,
            basis=basis if config.mode == "initial_states" else None,
        )
        rates = gain_function(config.gain)(test_fit.states[..., :n_excitatory])
        predicted = fit.readout.rows(heldout)(rates).detach().cpu().double()
        truth = data64[test][..., heldout]
        mean_predictor = data64[train][..., heldout].mean(0, keepdim=True).expand_as(truth)
        r2_model = r2_per_neuron(predicted, truth)
        r2_mean = r2_per_neuron(mean_predictor, truth)
        block = predicted_heldout[test.numpy()]
        block[..., heldout.numpy()] = predicted.numpy()
        predicted_heldout[test.numpy()] = block
        scores.append(
            FoldScore(
                train_conditions=train.tolist(),
                test_conditions=test.tolist(),
                heldin_neurons=heldin.tolist(),
                heldout_neurons=heldout.tolist(),
                r2_train=fit.r2,
                r2_heldout=r2_model.tolist(),
                r2_mean_predictor=r2_mean.tolist(),
                iterations=fit.iterations,
                converged=fit.converged,
            )
        )
    return CrossValidation.from_folds(scores, predicted_heldout)
