"""Spiking networks of leaky integrate-and-fire neurons built from rate networks
(docs/science.md §9): the neuron and its f–I curve (:mod:`.neuron`), the mapping of a rate
network onto pools of neurons (:mod:`.network`), their batched simulation in torch
(:mod:`.simulate`) and sessions of trials laid out as a recording (:mod:`.session`).

May import torch, numpy, scipy and the rest of :mod:`lifrnn_core`; nothing of the service.
"""

from lifrnn_core.spiking.network import DEFAULT_RATE_SCALE, SpikingNetwork, spiking_network
from lifrnn_core.spiking.neuron import (
    DISCRETE_BARRIER_SHIFT,
    LIFParameters,
    drive_for_rate,
    effective_threshold,
    firing_rate,
    firing_rate_slope,
)
from lifrnn_core.spiking.session import SpikingSession, run_spiking_session
from lifrnn_core.spiking.simulate import SpikingRun, simulate_spiking

__all__ = [
    "DEFAULT_RATE_SCALE",
    "DISCRETE_BARRIER_SHIFT",
    "LIFParameters",
    "SpikingNetwork",
    "SpikingRun",
    "SpikingSession",
    "drive_for_rate",
    "effective_threshold",
    "firing_rate",
    "firing_rate_slope",
    "run_spiking_session",
    "simulate_spiking",
    "spiking_network",
]
