"""The dashboard's pure helpers: the lineage forest, value formatting, safe redirects.

No browser and no server: these run with the unit tests.
"""

from __future__ import annotations

from typing import Any

from api.dashboard.routes import (
    flatten,
    format_value,
    lineage_forest,
    safe_next,
    side_by_side,
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
