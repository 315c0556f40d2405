"""Matplotlib figures of lifrnn results (Agg backend: no display needed), one module per job.

Each function takes plain arrays and returns a :class:`matplotlib.figure.Figure`; saving it is
the caller's business. Every panel has labelled axes with units; text is at least 8 pt.

They may import matplotlib, numpy and the rest of :mod:`lifrnn_core`; no web, database or
service code.
"""

from lifrnn_core.figures.fit import fit_figure
from lifrnn_core.figures.fit_data import (
    data_population_figure,
    data_psth_figure,
    nlb_scores_figure,
)
from lifrnn_core.figures.prepare import preparation_figure
from lifrnn_core.figures.retrain import retrain_figure, sequence_figure
from lifrnn_core.figures.soc import soc_figure
from lifrnn_core.figures.spiking import spiking_figure

__all__ = [
    "data_population_figure",
    "data_psth_figure",
    "fit_figure",
    "nlb_scores_figure",
    "preparation_figure",
    "retrain_figure",
    "sequence_figure",
    "soc_figure",
    "spiking_figure",
]
