"""The dashboard's pure helpers: the lineage forest, value formatting, safe redirects.

No browser and no server: these run with the unit tests.
"""

from __future__ import annotations

from typing import Any

from lifrnn.api.dashboard.routes import (
    flatten,
    format_value,
    lineage_forest,
    safe_next,
    scatter_data,
    side_by_side,
    spec_kind,
    sweep_columns,
)


def network(network_id: str, parent: str | None, created: str) -> dict[str, Any]:
    return {"id": network_id, "parent_network_id": parent, "created_at": created}


def shape(nodes: list[Any]) -> list[Any]:
    return [(node.network["id"], shape(node.children)) for node in nodes]


def test_lineage_draws_soc_fit_and_its_retrains_as_one_tree() -> None:
    networks = [
        network("retrain-b", "fit", "2026-01-04"),
        network("soc", None, "2026-01-01"),
        network("retrain-a", "fit", "2026-01-03"),
        network("fit", "soc", "2026-01-02"),
    ]
    assert shape(lineage_forest(networks)) == [
        ("soc", [("fit", [("retrain-a", []), ("retrain-b", [])])])
    ]


def test_a_network_whose_parent_is_not_listed_is_a_root_newest_first() -> None:
    networks = [network("old", None, "2026-01-01"), network("orphan", "gone", "2026-01-02")]
    assert shape(lineage_forest(networks)) == [("orphan", []), ("old", [])]


def test_a_cycle_of_parent_links_still_shows_every_network() -> None:
    networks = [network("a", "b", "2026-01-01"), network("b", "a", "2026-01-02")]
    drawn = lineage_forest(networks)
    seen: list[str] = []

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            seen.append(node.network["id"])
            walk(node.children)

    walk(drawn)
    assert sorted(seen) == ["a", "b"]


def test_values_are_compact() -> None:
    assert format_value(0.123456789) == "0.1235"
    assert format_value(None) == "—"
    assert format_value(True) == "true"
    assert format_value([1.0, 2.5]) == "[1, 2.5]"
    assert format_value(list(range(20))) == "[20 values]"


def test_nested_metrics_flatten_to_dotted_names() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == [("a", 1), ("b.c", 2), ("b.d.e", 3)]


def test_side_by_side_marks_the_rows_that_differ() -> None:
    jobs = [{"metrics": {"r2": 0.9, "n": 40}}, {"metrics": {"r2": 0.8, "n": 40, "extra": 1}}]
    assert side_by_side(jobs, "metrics") == [
        ("r2", [0.9, 0.8], True),
        ("n", [40, 40], False),
        ("extra", [None, 1], True),
    ]


def test_sign_in_only_redirects_within_the_dashboard() -> None:
    assert safe_next("/ui/jobs/abc") == "/ui/jobs/abc"
    for elsewhere in ("https://evil.example/", "//evil.example/ui/", "/docs", None):
        assert safe_next(elsewhere) == "/ui/jobs"


def run(job_id: str, network_id: str, queued: str) -> dict[str, Any]:
    return {"id": job_id, "kind": "prepare", "parent_network_id": network_id, "queued_at": queued}


def test_prepare_runs_hang_under_the_network_they_ran_on_oldest_first() -> None:
    networks = [network("soc", None, "2026-01-01"), network("fit", "soc", "2026-01-02")]
    runs = [
        run("late", "fit", "2026-01-04"),
        run("early", "fit", "2026-01-03"),
        run("elsewhere", "not-shown", "2026-01-03"),
    ]
    [soc] = lineage_forest(networks, runs)
    [fit] = soc.children
    assert soc.runs == []
    assert [job["id"] for job in fit.runs] == ["early", "late"]


def test_the_scatter_offers_numeric_parameters_that_differ_first_and_numeric_metrics() -> None:
    jobs = [
        {
            "id": "a",
            "name": None,
            "spec": {"n": 40, "seed": 0, "method": "x"},
            "metrics": {"r2": 0.9, "ok": True, "curve": [1, 2]},
        },
        {
            "id": "b",
            "name": "second",
            "spec": {"n": 40, "seed": 1, "method": "x"},
            "metrics": {"r2": 0.8, "ok": False, "curve": [1, 3]},
        },
    ]
    data = scatter_data(jobs, side_by_side(jobs, "spec"), side_by_side(jobs, "metrics"))
    assert data["params"] == ["seed", "n"]  # the varied one first; strings left out
    assert data["metrics"] == ["r2"]  # booleans and lists cannot be placed on an axis
    assert data["jobs"][1] == {
        "id": "b",
        "label": "second",
        "params": {"n": 40, "seed": 1},
        "metrics": {"r2": 0.8},
    }


def test_the_form_tells_a_sweep_from_a_job_spec_and_finds_its_kind() -> None:
    assert spec_kind('{"kind": "prepare"}') == ("prepare", False)
    assert spec_kind('{"spec": {"kind": "fit"}, "grid": {"seed": [0, 1]}}') == ("fit", True)
    assert spec_kind('{"spec": {"kind": "fit"}}') == (None, False)  # no axes: not a sweep
    assert spec_kind('{"kind": "nope"}') == (None, False)
    assert spec_kind("not json") == (None, False)


def test_a_sweeps_table_has_its_swept_fields_then_its_metrics() -> None:
    rows = [
        {"values": {"seed": 0}, "metrics": {}},
        {"values": {"seed": 1, "dt": 0.001}, "metrics": {"cost": 0.1}},
    ]
    assert sweep_columns(rows) == (["seed", "dt"], ["cost"])
