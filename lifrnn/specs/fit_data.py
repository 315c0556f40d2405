"""Spec of ``kind: "fit_data"`` jobs: a network fitted to recorded population activity.

Two observation models: ``gaussian`` (condition-averaged rates, squared error, cross-validated
over conditions) and ``poisson`` (single-trial spike counts scored as the Neural Latents
Benchmark scores, beside its baselines; :class:`SpikesSpec`). ``observation: "auto"`` picks
``poisson`` for an NWB file and ``gaussian`` for a ``.safetensors`` of averaged rates.

May import: pydantic, :mod:`lifrnn.headers`, :mod:`lifrnn.specs`, :mod:`lifrnn_core.errors`,
:mod:`lifrnn_core.euler` (and, when called, :mod:`lifrnn.nwb`, :mod:`lifrnn_core.recordings`,
:mod:`lifrnn_core.spike_trials`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lifrnn.headers import tensor_shape
from lifrnn.specs.base import (
    Device,
    FileId,
    InputFacts,
    ReferenceKind,
    Seed,
    SpecBase,
    StorableText,
    StrictModel,
    network_dims,
)
from lifrnn.specs.fit import NetworkReference, check_network
from lifrnn.specs.resources import FIGURE_BYTES, FIXED_BYTES, Estimate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.euler import HEUN_STEP, euler_step

if TYPE_CHECKING:
    from lifrnn.nwb import NWBLayout
    from lifrnn_core.recordings import PreprocessConfig
    from lifrnn_core.spike_trials import SpikeTrialsConfig

MAX_CONDITIONS = 1000
"""Conditions a fit may have at most."""
MAX_NEURONS = 5000
"""Recorded neurons a fit may have at most."""
MAX_TIME_SAMPLES = 5000
"""Time samples of the window at the fit's ``dt`` at most."""
TYPICAL_CONDITIONS = 108
"""Conditions assumed when the file's summary does not tell (MC_Maze's)."""
TYPICAL_TRIALS = 2295
"""Trials assumed when the file's summary does not tell (MC_Maze's)."""
MIN_HELDOUT_NEURONS = 2
"""Fewest held-out neurons a spike-train fit scores co-smoothing on."""
MIN_SPLIT_TRIALS = 2
"""Fewest trials in each of train, val and test of a spike-train fit."""

BaselineName = Literal["smoothing", "gpfa", "ridge", "condition_mean", "random_network"]
"""The baselines a spike-train fit is scored beside (docs/jobs.md, ``fit_data``)."""
BASELINES: tuple[BaselineName, ...] = (
    "smoothing",
    "gpfa",
    "ridge",
    "condition_mean",
    "random_network",
)


def nwb_summary(header: dict[str, Any] | None) -> dict[str, Any] | None:
    """The NWB summary a stored recording's header carries (:func:`lifrnn.nwb.inspect_nwb`),
    or None for a tensor file."""
    if not header:
        return None
    if isinstance(header.get("nwb"), dict):
        return header["nwb"]  # type: ignore[no-any-return]
    return header if header.get("format") == "nwb" else None


class RecordingSpec(StrictModel):
    """How a recording (an NWB file) becomes condition-averaged rates (docs/science.md §8).

    Field names default to the Neural Latents Benchmark's MC_Maze layout; override them for
    other reach datasets in NWB. A ``.safetensors`` input (already averaged ``rates``) uses
    ``soft_normalisation`` and ``n_pcs`` only.
    """

    align_event: StorableText = Field(
        "move_onset_time",
        min_length=1,
        max_length=100,
        description="trials-table column of the event each trial is aligned to",
    )
    window: tuple[float, float] = Field(
        (-0.25, 0.45),
        description="[start, stop] seconds around the event (start < 0 includes preparation; "
        "the network starts from x* at start)",
    )
    condition_columns: list[StorableText] = Field(
        default_factory=lambda: ["trial_type", "trial_version"],
        min_length=1,
        max_length=4,
        description="trials-table columns whose values together name a condition",
    )
    success_column: StorableText | None = Field(
        "success", max_length=100, description="trials-table column marking successful trials"
    )
    behavior_series: StorableText | None = Field(
        "hand_vel",
        max_length=100,
        description="hand-velocity TimeSeries in processing/behavior (null: no behaviour)",
    )
    sigma: float = Field(0.02, ge=0, le=0.2, description="Gaussian smoothing sd, seconds")
    soft_normalisation: float = Field(
        5.0, ge=0, description="added to each neuron's rate range before dividing, spikes/s"
    )
    min_rate: float = Field(
        1.0, ge=0, description="units with a lower mean rate are dropped, spikes/s"
    )
    min_trials: int = Field(1, ge=1, description="conditions with fewer usable trials dropped")
    n_pcs: int | None = Field(
        None, ge=2, le=100, description="fit the top principal components instead of neurons"
    )

    @field_validator("window")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1] or value[1] - value[0] > 10.0:
            raise ValueError("window must be [start, stop] with start < stop, at most 10 s long")
        return value


class SpikesSpec(StrictModel):
    """How a spike-train (``observation: "poisson"``) fit cuts, fits and scores single trials,
    with the Neural Latents Benchmark's MC_Maze defaults (NLB'21: Pei et al. 2021).

    The window and alignment event are ``recording.window`` and ``recording.align_event``; the
    held-out share of the neurons is the spec's ``heldout_fraction`` (when the file does not
    mark its own); the trial split is the file's, else drawn by the spec's ``seed``.
    """

    bin_width: float = Field(0.005, gt=0, le=0.05, description="seconds per bin (NLB: 5 ms)")
    forward: float = Field(
        0.2, ge=0, le=2.0, description="seconds after the window for forward prediction"
    )
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of training trials kept for validation (drawn)"
    )
    test_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="share of trials held out for testing when the file has no split",
    )
    baselines: list[BaselineName] = Field(
        default_factory=lambda: list(BASELINES),
        max_length=5,
        description="baselines scored beside the network on the same trials",
    )
    readout_decays: list[float] = Field(
        default_factory=lambda: [1.0, 10.0, 100.0],
        min_length=1,
        max_length=8,
        description="readout weight decays tried, in units of the readout's mean square weight "
        "per training trial (lifrnn_core.spike_fitting.SpikeFitConfig); the best on val trials "
        "is kept",
    )
    state_priors: list[float] = Field(
        default_factory=lambda: [1.0, 10.0],
        min_length=1,
        max_length=8,
        description="strengths of the x* prior tried, per training trial (as readout_decays); "
        "the best on val trials is kept",
    )
    patience: int = Field(
        10, ge=1, le=10_000, description="early stopping: iterations without a better val NLL"
    )
    single_trial_rounds: int = Field(
        1, ge=0, le=5, description="refits of the readout on inferred single trials"
    )
    gpfa_latent_dims: list[int] = Field(
        default_factory=lambda: [4, 8, 16, 32],
        min_length=1,
        max_length=8,
        description="GPFA latent dimensions tried; chosen on val trials",
    )
    gpfa_em_iterations: int = Field(50, ge=1, le=500, description="EM iterations per GPFA fit")

    @field_validator("readout_decays", "state_priors")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("decays and priors must be >= 0")
        return value

    @field_validator("gpfa_latent_dims")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError("GPFA latent dimensions must be >= 1")
        return value

    @field_validator("baselines")
    @classmethod
    def _distinct(cls, value: list[BaselineName]) -> list[BaselineName]:
        return list(dict.fromkeys(value))


class FitDataSpec(SpecBase):
    """Fit a network to recorded activity, cross-validated, beside two baselines
    (docs/science.md §8).

    ``data`` is the id of an uploaded NWB file (MC_Maze layout, or the fields named in
    ``recording``) or of a ``.safetensors`` file with ``rates`` (conditions, time, neurons),
    ``dt`` (a tensor or metadata) and optional ``behavior`` (conditions, time, 2).
    """

    kind: Literal["fit_data"] = "fit_data"
    network: NetworkReference
    data: FileId
    observation: Literal["auto", "poisson", "gaussian"] = Field(
        "auto",
        description="'poisson': single-trial spike counts, scored as NLB scores them (NWB "
        "files only); 'gaussian': condition-averaged rates, squared error; 'auto': poisson "
        "for an NWB file, gaussian for a .safetensors of rates",
    )
    spikes: SpikesSpec = Field(
        default_factory=SpikesSpec, description="the spike-train fit and its scores (fields below)"
    )
    recording: RecordingSpec = Field(
        default_factory=RecordingSpec, description="reading and preprocessing (fields below)"
    )
    mode: Literal["initial_states", "full_network"] = Field(
        "initial_states",
        description="'initial_states': W fixed, x* per condition and the maps fitted; "
        "'full_network': W adapts too (Dale's law, zero pattern, stability bound kept)",
    )
    tau: float = Field(0.15, gt=0, le=10.0, description="time constant, seconds")
    dt: float = Field(
        0.01, gt=0, le=0.05, description="bin width and sampling interval of the fit, seconds"
    )
    integration_dt: float | None = Field(
        None,
        gt=0,
        le=0.05,
        description="integration step of the simulation, seconds, dividing dt (default: the "
        "largest divisor of dt up to 2 ms, forward Euler, which needs a step well below the "
        "network's fastest time scale); a spike-train fit divides spikes.bin_width instead, "
        "up to 2.5 ms, with Heun's second-order method",
    )
    gain: Literal["relu", "tanh_shifted"] = Field("relu", description="rate function r(x)")
    state_radius: float = Field(0.2, gt=0, description="RMS of x* - x_sp per unit and condition")
    n_modes: int | None = Field(None, ge=1, description="Gramian eigenvectors spanning x*")
    ridge: float = Field(1e-3, gt=0, le=10.0, description="ridge penalty of the linear maps")
    fit_behavior: bool = Field(True, description="also fit a hand-velocity readout C")
    behavior_weight: float = Field(1.0, ge=0, description="weight of the behaviour in the cost")
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds over conditions")
    heldout_fraction: float = Field(
        0.25, gt=0, lt=1, description="share of neurons held out on held-out conditions"
    )
    baselines: bool = Field(
        True, description="also score a random E/I network and the mean over conditions"
    )
    max_iterations: int = Field(100, ge=1, le=10_000, description="iterations per fit at most")
    relative_tolerance: float = Field(1e-4, ge=0, description="stop below this relative change")
    learning_rate: float = Field(2e-3, gt=0, le=1.0, description="Adam step of full_network")
    stability_bound: float | None = Field(
        None, description="spectral abscissa bound of full_network (default: current + 0.05)"
    )
    seed: Seed = Field(0, description="folds, held-out neurons, first guesses")
    device: Device = Field("cpu", description="where the fit runs (cuda on a GPU worker)")
    dtype: Literal["float64", "float32"] = Field("float64", description="precision of the fit")

    numerical_hint: ClassVar[str] = (
        "try a smaller `state_radius` or `integration_dt`, a larger `ridge`, or a more stable "
        "network"
    )
    references: ClassVar[dict[str, ReferenceKind]] = {"network": "network", "data": "file"}

    @property
    def euler_step(self) -> float:
        """The simulation's Euler step, seconds."""
        return euler_step(self.dt, self.integration_dt)

    @property
    def substeps(self) -> int:
        """Euler steps per time sample."""
        return round(self.dt / self.euler_step)

    @property
    def spike_step(self) -> float:
        """The spike-train fit's integration step, seconds: Heun's method
        (``SpikeFitConfig.integrator``), at most ``HEUN_STEP`` inside ``spikes.bin_width``."""
        return euler_step(self.spikes.bin_width, self.integration_dt, HEUN_STEP)

    def resolved_observation(self, nwb: bool) -> Literal["poisson", "gaussian"]:
        """The observation model for a data file that is (``nwb``) or is not an NWB recording."""
        if self.observation == "auto":
            return "poisson" if nwb else "gaussian"
        return self.observation

    def spike_trials_config(self) -> SpikeTrialsConfig:
        """How the NWB recording is cut into scored single trials (NLB's layout)."""
        from lifrnn_core.spike_trials import SpikeTrialsConfig

        return SpikeTrialsConfig(
            bin_width=self.spikes.bin_width,
            align_event=self.recording.align_event,
            window=self.recording.window,
            forward=self.spikes.forward,
            heldout_fraction=self.heldout_fraction,
            val_fraction=self.spikes.val_fraction,
            test_fraction=self.spikes.test_fraction,
            seed=self.seed,
            min_heldout=MIN_HELDOUT_NEURONS,
            min_trials=MIN_SPLIT_TRIALS,
        )

    def spike_bins(self) -> int:
        """Bins of a spike-train trial: the window's and the forward prediction's."""
        start, stop = self.recording.window
        width = self.spikes.bin_width
        return max(1, round((stop - start) / width)) + round(self.spikes.forward / width)

    @model_validator(mode="after")
    def _window_in_steps(self) -> FitDataSpec:
        try:
            euler_step(self.dt, self.integration_dt)
        except InvalidNetworkError as error:
            raise ValueError(str(error)) from None
        samples = self.time_samples()
        if samples > MAX_TIME_SAMPLES:
            raise ValueError(
                f"recording.window at dt = {self.dt} s gives {samples} time samples; the limit "
                f"is {MAX_TIME_SAMPLES} (use a larger dt or a shorter window)"
            )
        if self.observation == "poisson":
            try:
                self.spike_step  # noqa: B018 (raises when integration_dt does not divide)
            except InvalidNetworkError as error:
                raise ValueError(f"spikes.bin_width: {error}") from None
            bins = self.spike_bins()
            if bins > MAX_TIME_SAMPLES:
                raise ValueError(
                    f"recording.window and spikes.forward at spikes.bin_width = "
                    f"{self.spikes.bin_width} s give {bins} bins; the limit is {MAX_TIME_SAMPLES}"
                )
        return self

    def preprocess_config(self) -> PreprocessConfig:
        """How an NWB recording becomes this fit's condition averages, at its ``dt``."""
        from lifrnn_core.recordings import PreprocessConfig

        recording = self.recording
        return PreprocessConfig(
            dt=self.dt,
            sigma=recording.sigma,
            align_event=recording.align_event,
            window=recording.window,
            soft_normalisation=recording.soft_normalisation,
            min_rate=recording.min_rate,
            n_pcs=recording.n_pcs,
            min_trials=recording.min_trials,
        )

    def nwb_layout(self) -> NWBLayout:
        """Where this spec reads an NWB recording's fields."""
        from lifrnn.nwb import NWBLayout

        return NWBLayout(
            conditions=tuple(self.recording.condition_columns),
            success=self.recording.success_column,
            velocity=self.recording.behavior_series if self.fit_behavior else None,
        )

    def time_samples(self) -> int:
        """Time samples of the window at ``dt`` (for an NWB input)."""
        start, stop = self.recording.window
        return max(2, round((stop - start) / self.dt))

    def data_sizes(self, facts: InputFacts | None) -> tuple[int, int, int]:
        """(conditions, time samples, neurons) of the data, from the stored file's header;
        limits where the header does not tell."""
        header = (facts.header if facts is not None else None) or {}
        rates = tensor_shape(header, "rates")
        if rates is not None and len(rates) == 3:
            steps = rates[1]
            duration = self._rates_dt(header)
            if duration is not None:
                steps = max(2, round(rates[1] * duration / self.dt))
            return int(rates[0]), int(steps), int(rates[2])
        summary = nwb_summary(header) or {}
        conditions = int(summary.get("conditions") or TYPICAL_CONDITIONS)
        return conditions, self.time_samples(), int(summary.get("units") or MAX_NEURONS)

    @staticmethod
    def _rates_dt(header: dict[str, Any]) -> float | None:
        try:
            value = float(str(header.get("metadata", {}).get("dt")))
        except ValueError:
            return None
        return value if value > 0 else None

    def check_inputs(self, inputs: dict[str, InputFacts]) -> None:
        """The network must be one; the data an NWB summary or (conditions, time, neurons)
        rates within the limits, with the fields this spec names."""
        check_network(inputs.get("network"), "network", fitted=False)
        facts = inputs.get("data")
        if facts is None or not facts.header:
            return
        header = facts.header
        summary = nwb_summary(header)
        if summary is not None:
            from lifrnn.nwb import check_layout

            problems = check_layout(summary, self.nwb_layout(), [self.recording.align_event])
            if problems:
                raise ValueError(f"data: {facts.name}: " + "; ".join(problems))
            if self.resolved_observation(nwb=True) == "poisson":
                self._check_spike_summary(summary, facts.name)
        elif self.observation == "poisson":
            raise ValueError(
                f"observation: 'poisson' needs spike trains, an NWB recording; {facts.name} is "
                "not one (use observation 'gaussian' or 'auto' for averaged rates)"
            )
        else:
            rates = tensor_shape(header, "rates")
            if rates is None or len(rates) != 3:
                raise ValueError(
                    f"data: {facts.name} is neither an NWB recording nor a .safetensors file "
                    "with 'rates' of shape (conditions, time, neurons)"
                )
            behavior = tensor_shape(header, "behavior")
            if behavior is not None and (len(behavior) != 3 or behavior[:2] != rates[:2]):
                raise ValueError(
                    f"data: 'behavior' has shape {tuple(behavior)}; it must be (conditions, "
                    f"time, 2) with (conditions, time) = {tuple(rates[:2])}"
                )
            if tensor_shape(header, "dt") is None and self._rates_dt(header) is None:
                raise ValueError(
                    f"data: {facts.name} gives no sampling interval: add a tensor or "
                    "metadata 'dt' (seconds)"
                )
        conditions, samples, neurons = self.data_sizes(facts)
        for name, value, limit in (
            ("conditions", conditions, MAX_CONDITIONS),
            ("time samples", samples, MAX_TIME_SAMPLES),
            ("neurons", neurons, MAX_NEURONS),
        ):
            if value > limit:
                raise ValueError(f"data: {facts.name} has {value} {name}; the limit is {limit}")
        if summary is None and conditions < self.folds:
            raise ValueError(
                f"folds: {self.folds} folds need at least as many conditions; the data have "
                f"{conditions}"
            )

    def _check_spike_summary(self, summary: dict[str, Any], name: str) -> None:
        """A spike-train fit needs spikes, enough neurons for held-in and held-out ones and
        enough trials for train, val and test; the message names what is missing and the
        minimum (hand velocity is optional: its score is then left out)."""
        units = int(summary.get("units") or 0)
        spikes = int(summary.get("spikes") or 0)
        trials = int(summary.get("trials") or 0)
        least_units = MIN_HELDOUT_NEURONS + 1
        if units == 0 or spikes == 0:
            raise ValueError(
                f"data: {name} has no spikes ({units} units, {spikes} spike times): a spike-train "
                f"fit needs a units table with spike_times, at least {least_units} units"
            )
        columns = (summary.get("unit_tables") or {}).get("units", {}).get("columns", [])
        if "heldout" not in columns:  # the file does not choose: the spec's fraction does
            heldout = round(self.heldout_fraction * units)
            if heldout < MIN_HELDOUT_NEURONS or heldout >= units:
                raise ValueError(
                    f"data: {name}: heldout_fraction {self.heldout_fraction} of {units} neurons "
                    f"holds out {heldout}; co-smoothing needs at least {MIN_HELDOUT_NEURONS} "
                    f"held-out neurons (minimum {MIN_HELDOUT_NEURONS}) and 1 held-in neuron"
                )
        least_trials = 3 * MIN_SPLIT_TRIALS
        if trials < least_trials:
            raise ValueError(
                f"data: {name} has {trials} trials; a spike-train fit needs at least "
                f"{least_trials} ({MIN_SPLIT_TRIALS} in each of train, val and test)"
            )

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """The spike-train fit (:meth:`_spike_estimate`) for an NWB file unless
        ``observation`` is ``gaussian``; else the Gaussian fit (:meth:`_rates_estimate`)."""
        facts = inputs.get("data")
        nwb = nwb_summary(facts.header if facts is not None else None) is not None
        if self.observation == "poisson" or (self.observation == "auto" and nwb):
            return self._spike_estimate(inputs)
        return self._rates_estimate(inputs)

    def _spike_estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """Baselines (GPFA's EM dominating), then the network and the random network, each a
        condition fit per regularisation setting (~20 K B s n^2 per iteration) and single-trial
        inference (~20 trials B s n^2 per iteration, 50 iterations, each round)."""
        n = network_dims(inputs.get("network")).n
        facts = inputs.get("data")
        summary = nwb_summary(facts.header if facts is not None else None) or {}
        conditions = int(summary.get("conditions") or TYPICAL_CONDITIONS)
        trials = int(summary.get("trials") or TYPICAL_TRIALS)
        neurons = int(summary.get("units") or MAX_NEURONS)
        bins = self.spike_bins()
        substeps = round(self.spikes.bin_width / self.spike_step)
        bytes_per = 4 if self.dtype == "float32" else 8
        spikes = self.spikes
        networks = 2 if self.baselines and "random_network" in spikes.baselines else 1
        fixed = [name for name in spikes.baselines if name != "random_network"]
        models = networks + (len(fixed) if self.baselines else 0)
        grid = len(spikes.readout_decays) * len(spikes.state_priors)
        rounds = spikes.single_trial_rounds + 1
        step = 2 * 20.0 * bins * substeps * n * n  # Heun: two products with W per step
        fit_work = step * (conditions * self.max_iterations * grid + trials * 50 * (rounds + 1))
        gpfa = "gpfa" in spikes.baselines and self.baselines
        x_dim = max(spikes.gpfa_latent_dims)
        gpfa_work = (
            spikes.gpfa_em_iterations
            * len(spikes.gpfa_latent_dims)
            * 200
            * ((bins * x_dim) ** 2 + bins * neurons * x_dim)
            * 4.0
            if gpfa
            else 0.0
        )
        glm_work = 200.0 * trials * bins * neurons * neurons
        batch = min(256, trials)  # SpikeFitConfig.trial_batch
        trajectory = 2 * batch * bins * substeps * n * bytes_per  # Heun: two states a step
        counts = trials * bins * neurons * 8
        return Estimate(
            memory_bytes=16 * trajectory
            + 12 * counts
            + (((bins * x_dim) ** 2) * 8 * 4 if gpfa else 0)
            + 5 * n * n * 8
            + FIXED_BYTES,
            # nlb_predictions.h5: the network's rates of every trial; spike_fit.safetensors:
            # every model's and the data's on the test trials (a file's own split may hold
            # more of them than test_fraction: a quarter at least is counted); float32
            output_bytes=(2 * n * n + conditions * n + neurons * n) * 8
            + int(
                (1 + max(spikes.test_fraction, 0.25) * (models + 1)) * trials * bins * neurons * 4
            )
            + 2 * FIGURE_BYTES,
            work=networks * fit_work + gpfa_work + glm_work + 50.0 * n**3 * networks,
            basis=f"n={n}, {trials} trials, {conditions} conditions, {bins} bins of "
            f"{spikes.bin_width} s, {neurons} neurons, {networks} network fit(s) of {grid} "
            f"settings x up to {self.max_iterations} iterations, {substeps} Heun steps per bin",
            fields=("max_iterations", "spikes", "recording.window", "integration_dt"),
            step_work=50.0 * n**3,
        )

    def _rates_estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """Cross-validation (each fold a training fit and a held-out fit; twice with the random
        baseline) and the final fit, each ~20 K T n^2 per iteration, as the reach fit."""
        n = network_dims(inputs.get("network")).n
        conditions, samples, neurons = self.data_sizes(inputs.get("data"))
        bytes_per = 4 if self.dtype == "float32" else 8
        trajectory = conditions * samples * self.substeps * n * bytes_per
        fits = 1 + (2 if self.baselines else 1) * self.folds
        return Estimate(
            memory_bytes=16 * trajectory
            + 6 * conditions * samples * neurons * 8
            + 5 * n * n * 8
            + FIXED_BYTES,
            output_bytes=(2 * n * n + conditions * n + 3 * conditions * samples * neurons) * 8
            + 4 * FIGURE_BYTES,
            work=20.0 * conditions * samples * self.substeps * n * n * self.max_iterations * fits
            + 50.0 * n**3 * fits,
            basis=f"n={n}, {conditions} conditions, T={samples}, {neurons} neurons, "
            f"{fits} fits of up to {self.max_iterations} iterations, {self.substeps} Euler steps "
            "per sample",
            fields=("max_iterations", "folds", "dt", "integration_dt", "recording.window"),
            step_work=50.0 * n**3,
        )
