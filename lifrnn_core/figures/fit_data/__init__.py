"""Figures of a network fitted to recorded population activity: example neurons' PSTHs (data,
fit, cross-validated prediction), the population's trajectories and rotations (PCs, jPCA as in
Churchland et al. 2012), the cross-validation scores, and the Neural Latents Benchmark's four
scores of the network beside its baselines (:func:`nlb_scores_figure`, NLB'21: Pei et al. 2021).

The package, one module per figure (every name is re-exported here, so
``lifrnn_core.figures.fit_data.X`` keeps working):

- :mod:`~lifrnn_core.figures.fit_data.psths`: :func:`data_psth_figure`, with the condition
  colours and the choice of conditions shown (:func:`condition_colours`,
  :func:`shown_conditions`);
- :mod:`~lifrnn_core.figures.fit_data.population`: :func:`data_population_figure`, its PC and jPC
  planes (:func:`jpca_colours`), the held-out R² histogram and the cross-validation table;
- :mod:`~lifrnn_core.figures.fit_data.nlb`: :func:`nlb_scores_figure` and
  :func:`nlb_model_order`.

May import: numpy, matplotlib, :mod:`lifrnn_core.figures._common`."""

from __future__ import annotations

from lifrnn_core.figures.fit_data.nlb import MC_MAZE_PUBLISHED_CO_BPS as MC_MAZE_PUBLISHED_CO_BPS
from lifrnn_core.figures.fit_data.nlb import NLB_MODEL_NAMES as NLB_MODEL_NAMES
from lifrnn_core.figures.fit_data.nlb import NLB_SCORE_COLUMNS as NLB_SCORE_COLUMNS
from lifrnn_core.figures.fit_data.nlb import nlb_model_order, nlb_scores_figure
from lifrnn_core.figures.fit_data.population import MAX_TABLE_FOLDS as MAX_TABLE_FOLDS
from lifrnn_core.figures.fit_data.population import R2_FLOOR as R2_FLOOR
from lifrnn_core.figures.fit_data.population import data_population_figure, jpca_colours
from lifrnn_core.figures.fit_data.psths import MAX_CONDITIONS_SHOWN as MAX_CONDITIONS_SHOWN
from lifrnn_core.figures.fit_data.psths import MAX_NEURONS_SHOWN as MAX_NEURONS_SHOWN
from lifrnn_core.figures.fit_data.psths import (
    condition_colours,
    data_psth_figure,
    shown_conditions,
)

__all__ = [
    "condition_colours",
    "data_population_figure",
    "data_psth_figure",
    "jpca_colours",
    "nlb_model_order",
    "nlb_scores_figure",
    "shown_conditions",
]
