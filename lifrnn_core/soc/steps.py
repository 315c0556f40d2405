"""One SOC step: the factorisations of W (one real Schur form on the CPU gives the spectral
abscissa and, shifted, both Lyapunov solves; the ``sign`` and ``scipy`` backends do the same
otherwise), each variant's shift, gradient and update with its projections, and the constants of
the adaptive step rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

import numpy as np
import scipy.linalg
import torch
from scipy.linalg.lapack import dtrsyl

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import SchurForm, lyap_sign
from lifrnn_core.soc_parameters import SOCParameters

__all__ = [
    "ADAPTIVE_GROWTH",
    "ADAPTIVE_MAX_FACTOR",
    "ADAPTIVE_OVERSHOOT",
    "ADAPTIVE_SHRINK",
    "Backend",
    "balance_inhibition",
    "kao2021_shift",
    "normalise_rows",
    "sparsify_inhibition",
]

Backend = Literal["schur", "sign", "scipy"]


class _Factorisation(Protocol):
    spectral_abscissa: float

    def gradient(self, shift: float) -> torch.Tensor:
        """``Q P / trace(Q P)`` for ``A = W - shift I`` (n, n)."""
        ...

    def energy(self, shift: float) -> float:
        """``trace P`` for ``A = W - shift I``, ``A P + P A^T = -I`` (requires A stable)."""
        ...


class _SchurFactorisation:
    """CPU: one real Schur form of W gives the abscissa and both Gramians of any shift."""

    def __init__(self, W: torch.Tensor) -> None:
        self.form = SchurForm.of(W.numpy())
        self.spectral_abscissa = self.form.spectral_abscissa
        self._energy: tuple[float, float] | None = None  # (shift, trace P) of the last gradient

    def gradient(self, shift: float) -> torch.Tensor:
        T, Z = self.form.T, self.form.Z
        n = T.shape[0]
        Ts = T - shift * np.eye(n)
        rhs = -np.eye(n)
        # In Schur coordinates Q = Z X Z^T and P = Z Y Z^T, so QP = Z (X Y) Z^T and
        # trace(QP) = trace(XY): no need to rotate either Gramian back separately.
        X, scale_x, info_x = dtrsyl(Ts, Ts, rhs, trana="T", tranb="N")
        Y, scale_y, info_y = dtrsyl(Ts, Ts, rhs, trana="N", tranb="T")
        if info_x or info_y:
            raise InvalidNetworkError("shifted W is not stable: Lyapunov equation is singular")
        XY = (X / scale_x) @ (Y / scale_y)
        G = Z @ XY @ Z.T
        self._energy = (shift, float(np.trace(Y) / scale_y))
        return torch.from_numpy(G / np.trace(XY))

    def energy(self, shift: float) -> float:
        if self._energy is not None and self._energy[0] == shift:
            return self._energy[1]  # the gradient's solve gave it: the trace is rotation-free
        Ts = self.form.T - shift * np.eye(self.form.T.shape[0])
        Y, scale, info = dtrsyl(Ts, Ts, -np.eye(Ts.shape[0]), trana="N", tranb="T")
        if info:
            raise InvalidNetworkError("shifted W is not stable: Lyapunov equation is singular")
        return float(np.trace(Y) / scale)  # trace is invariant under the rotation by Z


class _SignFactorisation:
    """Any torch device: eigvals for the abscissa, sign-function Newton for the Gramians."""

    def __init__(self, W: torch.Tensor) -> None:
        self.W = W
        self.spectral_abscissa = float(torch.linalg.eigvals(W).real.max())

    def gradient(self, shift: float) -> torch.Tensor:
        n = self.W.shape[0]
        identity = torch.eye(n, dtype=self.W.dtype, device=self.W.device)
        A = self.W - shift * identity
        P = lyap_sign(A, identity)
        Q = lyap_sign(A.mT, identity)
        QP = Q @ P
        return QP / torch.trace(QP)

    def energy(self, shift: float) -> float:
        identity = torch.eye(self.W.shape[0], dtype=self.W.dtype, device=self.W.device)
        return float(torch.trace(lyap_sign(self.W - shift * identity, identity)))


class _ScipyFactorisation:
    """The straightforward recipe (baseline): eigvals, then two independent Lyapunov solves."""

    def __init__(self, W: torch.Tensor) -> None:
        self.W = W.numpy()
        self.spectral_abscissa = float(np.max(np.linalg.eigvals(self.W).real))

    def gradient(self, shift: float) -> torch.Tensor:
        n = self.W.shape[0]
        A = self.W - shift * np.eye(n)
        Q = scipy.linalg.solve_continuous_lyapunov(A.T, -2.0 * np.eye(n))
        P = scipy.linalg.solve_continuous_lyapunov(A, -2.0 * np.eye(n))
        QP = Q @ P
        return torch.from_numpy(QP / np.trace(QP))

    def energy(self, shift: float) -> float:
        n = self.W.shape[0]
        P = scipy.linalg.solve_continuous_lyapunov(self.W - shift * np.eye(n), -np.eye(n))
        return float(np.trace(P))


_FACTORISATIONS: dict[str, Callable[[torch.Tensor], _Factorisation]] = {
    "schur": _SchurFactorisation,
    "sign": _SignFactorisation,
    "scipy": _ScipyFactorisation,
}


def _factorise(W: torch.Tensor, backend: Backend) -> _Factorisation:
    return _FACTORISATIONS[backend](W)


def balance_inhibition(W: torch.Tensor, n_excitatory: int, gamma: float) -> torch.Tensor:
    """Rescale inhibitory blocks in place so that inhibition is gamma times excitation on average.

    ``W_EI *= -gamma mean(W_EE) / mean(W_EI)`` and ``W_II *= -gamma mean(W_IE) / mean(W_II)``
    (rows postsynaptic, means over whole blocks, zeros included), as in Stroud's code.
    """
    n_e = n_excitatory
    ee, ei = W[:n_e, :n_e].mean(), W[:n_e, n_e:].mean()
    ie, ii = W[n_e:, :n_e].mean(), W[n_e:, n_e:].mean()
    if ei == 0 or ii == 0:
        raise InvalidNetworkError("an inhibitory block became all zero: lower the rate")
    W[:n_e, n_e:] *= -gamma * ee / ei
    W[n_e:, n_e:] *= -gamma * ie / ii
    return W


def sparsify_inhibition(W: torch.Tensor, n_excitatory: int, density: float) -> torch.Tensor:
    """Keep only the most negative inhibitory weights, in place; zero the rest.

    Keeps ``round(density n n_i) - 1`` entries of the inhibitory columns, the count of Stroud's
    ``soc_function.m``.
    """
    inhibitory = W[:, n_excitatory:]
    n_keep = max(round(density * inhibitory.numel()) - 1, 1)
    kept = torch.topk(-inhibitory.reshape(-1), n_keep, sorted=False).indices
    mask = torch.zeros(inhibitory.numel(), dtype=torch.bool, device=W.device)
    mask[kept] = True
    W[:, n_excitatory:] = torch.where(mask.view_as(inhibitory), inhibitory, 0.0)
    return W


def _hennequin2014_shift(alpha: float, params: SOCParameters) -> float:
    return max(1.5 * alpha, alpha + 0.2)


def _hennequin2014_gradient(factor: _Factorisation, shift: float) -> torch.Tensor:
    return factor.gradient(shift)


def _hennequin2014_update(
    W: torch.Tensor, G: torch.Tensor, rate: float, params: SOCParameters
) -> torch.Tensor:
    n_e = params.n_excitatory
    W = W.clone()
    W[:, n_e:] -= rate * G[:, n_e:]
    W[:, n_e:].clamp_(max=0.0)
    balance_inhibition(W, n_e, params.gamma)
    sparsify_inhibition(W, n_e, params.inhibitory_density)
    W.fill_diagonal_(0.0)
    return W


def normalise_rows(W: torch.Tensor, n_excitatory: int, row_sum: float) -> torch.Tensor:
    """Rescale each row's inhibitory weights in place so that every row sums to ``row_sum``.

    The kao2021 constraint; the factor is positive, so Dale's law is kept.
    """
    n_e = n_excitatory
    excitatory_sum = W[:, :n_e].sum(dim=1)
    inhibitory_sum = W[:, n_e:].sum(dim=1)
    if bool((inhibitory_sum == 0).any()):
        raise InvalidNetworkError("a row lost all its inhibitory weights: lower the rate")
    # A positive factor: signs are kept, and every row sums to exactly row_sum.
    W[:, n_e:] *= ((row_sum - excitatory_sum) / inhibitory_sum)[:, None]
    return W


def kao2021_shift(alpha: float, shift_scale: float = 1.0) -> float:
    """Shift ``s`` of a kao2021 step at spectral abscissa ``alpha``: Kao's ``max(1, 1.2 alpha)``,
    its margin above ``alpha`` multiplied by ``shift_scale`` (``SOCParameters``; 1 at n >= 200).
    """
    published = max(1.0, 1.2 * alpha)
    if shift_scale == 1.0:
        return published  # computed as published, so that default builds stay bit for bit
    return alpha + shift_scale * (published - alpha)


def _kao2021_shift(alpha: float, params: SOCParameters) -> float:
    return kao2021_shift(alpha, params.shift_scale)


def _kao2021_gradient(factor: _Factorisation, shift: float) -> torch.Tensor:
    return factor.gradient(shift).fill_diagonal_(0.0)


def _kao2021_update(
    W: torch.Tensor, G: torch.Tensor, rate: float, params: SOCParameters
) -> torch.Tensor:
    n_e = params.n_excitatory
    W = W.clone()
    W[:, n_e:] -= rate * G[:, n_e:]
    W[:, n_e:].clamp_(max=0.0)
    return normalise_rows(W, n_e, params.row_sum)


class _Variant(NamedTuple):
    """One SOC variant's step, split so that the adaptive rule can retry a step size: the
    ``shift`` s at spectral abscissa alpha, the ``gradient`` (n, n) at that shift of the
    factorised W, and ``update``, which takes a step of a given size along it and applies the
    variant's projections (Dale's law, renormalisation, pruning).
    """

    shift: Callable[[float, SOCParameters], float]
    gradient: Callable[[_Factorisation, float], torch.Tensor]
    update: Callable[[torch.Tensor, torch.Tensor, float, SOCParameters], torch.Tensor]


_VARIANTS = {
    "hennequin2014": _Variant(_hennequin2014_shift, _hennequin2014_gradient, _hennequin2014_update),
    "kao2021": _Variant(_kao2021_shift, _kao2021_gradient, _kao2021_update),
}

ADAPTIVE_GROWTH = 2.0
"""After a step taken at its first try, the next adaptive step first tries this many times it."""
ADAPTIVE_SHRINK = 0.25
"""A rejected adaptive trial is retried at this fraction of its step size (never below rate)."""
ADAPTIVE_MAX_FACTOR = 8.0
"""Adaptive steps are at most this many times ``rate``. Longer steps take fewer Schur forms but
land on less amplifying networks (n = 200 hennequin2014, seeds 0 and 1: 16 rate lost 1-11 % of
the fixed rate's amplification, unbounded 14-18 %; 8 rate 0-5 %)."""
ADAPTIVE_OVERSHOOT = 0.02
"""An adaptive trial may pass the target abscissa by at most this fraction of ``1 - target``
(the stability margin of ``W - I``, which sets the amplification); one that passes it further
is retried shorter, so that the last step lands about where the fixed rule's would."""
