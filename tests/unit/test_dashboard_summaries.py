"""The queue's one-line summaries of a job's spec, key metrics and time."""

from __future__ import annotations

from lifrnn.api.dashboard.summaries import key_metrics, spec_summary, timing


def test_each_kind_is_summarised_by_what_a_scientist_looks_at_first():
    soc = {
        "kind": "soc",
        "spec": {"method": "kao2021", "n": 200, "seed": 3},
        "metrics": {"spectral_abscissa": 0.80991, "iterations": 214},
    }
    assert spec_summary(soc) == "kao2021 n=200 seed 3"
    assert key_metrics(soc) == "α 0.81 · 214 it"
    fit = {
        "kind": "fit",
        "spec": {
            "movements": {"directions_deg": [0, 180]},
            "network": {"kind": "soc", "method": "kao2021", "n": 200},
        },
        "metrics": {"r2_min": 0.99934},
    }
    assert spec_summary(fit) == "2 reaches · inline kao2021 n=200"
    assert key_metrics(fit) == "R² min 0.9993"
    prepare = {
        "kind": "prepare",
        "spec": {"controllers": ["lqr", "thalamic_loop"], "network": {"job": "abcdef123456"}},
        "metrics": {"controllers": {"lqr": {}, "thalamic_loop": {}}},
        "flat_metrics": {
            "controllers.lqr.motor_r2.min": 0.9991,
            "controllers.thalamic_loop.motor_r2.min": 0.874,
        },
    }
    assert spec_summary(prepare) == "lqr, thalamic_loop · job abcdef12"
    assert key_metrics(prepare) == "lqr 0.999 · thalamic_loop 0.874"
    retrain = {
        "kind": "retrain",
        "spec": {"mode": "both", "directions_deg": [90], "network": "0123456789"},
        "metrics": {
            "initial_states": {"r2_new_min": -2.9, "r2_old_min": 0.999},
            "full_network": {"r2_new_min": 0.97, "r2_old_min": 0.98},
        },
    }
    assert spec_summary(retrain) == "both · 1 new · network 01234567"
    assert key_metrics(retrain) == (
        "initial_states: new -2.9, old 0.999 · full_network: new 0.97, old 0.98"
    )
    retrain["metrics"] = {
        "initial_states": {"r2_new_min": -2.9, "r2_old_min": 0.999, "reachable": False}
        | {"best_r2_possible": -2.93, "converged": True},
        "initial_states_and_readout": {"r2_new_min": 0.999, "r2_old_min": 0.998},
        "full_network": {"r2_new_min": 0.97, "r2_old_min": 0.98, "converged": False},
    }
    assert key_metrics(retrain) == (
        "initial_states: new -2.9, old 0.999 (unreachable, best -2.93) · "
        "initial_states_and_readout: new 0.999, old 0.998 · "
        "full_network: new 0.97, old 0.98 (not converged)"
    )
    fit_data = {
        "kind": "fit_data",
        "spec": {"mode": "initial_states", "folds": 5, "network": "0123456789"},
        "metrics": {"r2_heldout": 0.8104, "r2_heldout_random": 0.6236},
    }
    assert spec_summary(fit_data) == "initial_states · 5 folds · network 01234567"
    assert key_metrics(fit_data) == "held-out R² 0.81 (random 0.624)"
    fit_data["metrics"] |= {"euler_step_ratio": 0.73, "euler_step_coarse": True}
    assert key_metrics(fit_data) == (
        "held-out R² 0.81 (random 0.624) (coarse Euler step: 0.73 of the fastest time scale)"
    )
    assert key_metrics({"kind": "soc", "spec": {}, "metrics": None}) == ""


def test_time_is_the_run_so_far_and_the_time_left_while_running():
    assert timing({"elapsed_seconds": None}) == ""
    assert timing({"elapsed_seconds": 75.0, "eta_seconds": None}) == "75 s"
    assert timing({"elapsed_seconds": 12.0, "eta_seconds": 200.0}) == "12 s, ~3 min left"


def test_a_list_of_records_is_shown_as_a_table_and_nothing_else_is():
    from lifrnn.api.dashboard.routes import as_table

    rows = [
        {"controller": "lqr", "direction_deg": 0.0, "motor_r2": 0.999},
        {"controller": "lqr", "direction_deg": 180.0, "motor_r2": 0.998},
    ]
    assert as_table(rows) == (
        ["controller", "direction_deg", "motor_r2"],
        [["lqr", 0.0, 0.999], ["lqr", 180.0, 0.998]],
    )
    assert as_table([{"a": 1}, {"b": 2}]) is None  # not the same columns
    assert as_table([0.1, 0.2]) is None and as_table([]) is None and as_table({"a": 1}) is None


def test_a_spiking_job_shows_its_pools_and_how_they_follow_their_units():
    job = {
        "kind": "simulate_spiking",
        "spec": {"network": {"job": "1234567890ab"}, "pool_size": 20, "noise": 3.0, "trials": 10},
        "metrics": {
            "mean_rate_hz": 19.7566,
            "model_mean_rate_hz": 19.9202,
            "pool_r2_median": 0.44107,
            "cv_isi_mean": 0.701642,
        },
    }
    assert spec_summary(job) == "K=20 · 3.0 mV · 10 trials · job 12345678"
    assert key_metrics(job) == "19.8 Hz (rate network 19.9) · pool R² 0.44 · CV ISI 0.7"
