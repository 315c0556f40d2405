"""Sweep axes expanded into points (grid, zip, random, chains over an earlier sweep), each
point's spec from the base spec, and the CLI's ``--grid``/``--zip`` arguments."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from lifrnn.cli.sweeps import AxisError, parse_axis
from lifrnn.sweeps import SweepDefinition, SweepError, expand_points, point_spec

SOC = {"kind": "soc", "n": 40}
EARLIER = "6f1c3a52-8d2e-4b7a-9c0f-1e2d3c4b5a69"
CHILDREN = ["a" * 8 + "-0000-4000-8000-" + f"{i:012d}" for i in range(3)]


def no_sweeps(sweep_id):
    raise SweepError(f"no sweep '{sweep_id}' of yours")


def points(body, children_of=no_sweeps, max_points=1000):
    return expand_points(SweepDefinition.model_validate(body), children_of, max_points)


def test_a_grid_is_the_cartesian_product_first_axis_outermost():
    found = points({"spec": SOC, "grid": {"seed": [0, 1, 2], "radius": [8, 10, 12]}})
    assert len(found) == 9
    assert found[:4] == [
        {"seed": 0, "radius": 8},
        {"seed": 0, "radius": 10},
        {"seed": 0, "radius": 12},
        {"seed": 1, "radius": 8},
    ]


def test_zip_takes_the_axes_side_by_side():
    found = points({"spec": SOC, "zip": {"seed": [0, 1, 2], "radius": [8, 10, 12]}})
    assert found == [{"seed": 0, "radius": 8}, {"seed": 1, "radius": 10}, {"seed": 2, "radius": 12}]


def test_zip_axes_of_different_lengths_are_refused_with_their_lengths():
    with pytest.raises(SweepError, match="seed has 3, radius has 2"):
        points({"spec": SOC, "zip": {"seed": [0, 1, 2], "radius": [8, 10]}})


def test_random_points_are_reproducible_by_seed_and_within_their_ranges():
    axes = {
        "radius": {"uniform": [5, 15]},
        "rate": {"loguniform": [0.01, 1]},
        "seed": {"choice": [0, 1, 2]},
        "max_iterations": {"randint": [10, 20]},
    }
    body = {"spec": SOC, "random": {"n": 50, "seed": 7, "axes": axes}}
    first = points(body)
    assert len(first) == 50 and points(body) == first
    reordered = {"spec": SOC, "random": {"n": 50, "seed": 7, "axes": dict(reversed(axes.items()))}}
    assert [sorted(p.items()) for p in points(reordered)] == [sorted(p.items()) for p in first]
    assert points({"spec": SOC, "random": {"n": 50, "seed": 8, "axes": axes}}) != first
    assert all(5 <= p["radius"] < 15 and 0.01 <= p["rate"] < 1 for p in first)
    assert {p["seed"] for p in first} == {0, 1, 2}
    assert {p["max_iterations"] for p in first} <= set(range(10, 20))


def test_a_sweep_axis_expands_to_the_networks_of_its_jobs_in_point_order():
    def children_of(sweep_id):
        assert sweep_id == EARLIER
        return CHILDREN

    body = {"spec": {"kind": "fit"}, "grid": {"network": {"sweep": EARLIER}, "seed": [0, 1]}}
    found = points(body, children_of)
    assert [p["network"] for p in found] == [{"job": c} for c in CHILDREN for _ in (0, 1)]
    listed = {"spec": {"kind": "fit"}, "zip": {"network": [{"sweep": EARLIER}], "seed": [4, 5, 6]}}
    assert [p["network"]["job"] for p in points(listed, children_of)] == CHILDREN


def test_a_sweep_that_is_not_yours_is_named_with_its_axis():
    body = {"spec": {"kind": "fit"}, "grid": {"network": {"sweep": EARLIER}}}
    with pytest.raises(SweepError, match=f"grid.network: no sweep '{EARLIER}' of yours"):
        points(body)


def test_more_points_than_allowed_are_refused_before_they_are_made():
    body = {"spec": SOC, "grid": {f"a{i}": list(range(100)) for i in range(8)}}  # 10^16 points
    with pytest.raises(SweepError, match="at most 1000"):
        points(body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"spec": SOC}, "exactly one of grid, zip or random"),
        ({"spec": SOC, "grid": {"seed": [0]}, "zip": {"seed": [0]}}, "got grid, zip"),
        ({"spec": SOC, "grid": {"network": [1], "network.n": [40]}}, "overlap"),
        ({"spec": SOC, "grid": {"seed": [float("nan")]}}, "grid.seed[0]: numbers must be finite"),
        ({"spec": SOC, "grid": {"bad name": [0]}}, "pattern"),
        ({"spec": SOC, "random": {"n": 2, "axes": {"radius": {"uniform": [5, 1]}}}}, "low < high"),
    ],
)
def test_malformed_axes_are_refused(body, problem):
    with pytest.raises(ValidationError, match=re.escape(problem)):
        SweepDefinition.model_validate(body)


def test_a_point_sets_dotted_fields_and_leaves_the_base_alone():
    base = {"kind": "fit", "network": {"kind": "soc", "n": 40}, "dt": 0.002}
    spec = point_spec(base, {"network.seed": 3, "movements.duration": 0.1})
    assert spec["network"] == {"kind": "soc", "n": 40, "seed": 3}
    assert spec["movements"] == {"duration": 0.1}
    assert base == {"kind": "fit", "network": {"kind": "soc", "n": 40}, "dt": 0.002}


def test_a_field_below_something_that_is_not_an_object_is_named():
    with pytest.raises(SweepError, match=r'network.seed: network is "abc", not an object'):
        point_spec({"kind": "fit", "network": "abc"}, {"network.seed": 1})


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("seed=0:5", ("seed", [0, 1, 2, 3, 4])),
        ("seed=10:0:-5", ("seed", [10, 5])),
        ("radius=8,10,12.5", ("radius", [8, 10, 12.5])),
        ("method=kao2021,hennequin2014", ("method", ["kao2021", "hennequin2014"])),
        ("movements.directions_deg=[[0,180],[90]]", ("movements.directions_deg", [[0, 180], [90]])),
        (f"network=sweep:{EARLIER}", ("network", [{"sweep": EARLIER}])),
        (
            f"network=job:{CHILDREN[0]},job:{CHILDREN[1]}",
            ("network", [{"job": CHILDREN[0]}, {"job": CHILDREN[1]}]),
        ),
    ],
)
def test_cli_axis_arguments(argument, expected):
    assert parse_axis(argument) == expected


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ("seed", "NAME=VALUES"),
        ("seed=5:0", "has 0 values"),
        ("seed=0:9:0", "cannot be 0"),
        ("seed=0:1000000000", "1 to 100000"),
        ("radius=inf", "finite"),
        ("n=[1,", "JSON array"),
    ],
)
def test_cli_axis_arguments_that_cannot_be_read(argument, problem):
    with pytest.raises(AxisError, match=re.escape(problem)):
        parse_axis(argument)


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-7, 7).filter(bool))
def test_a_cli_range_is_pythons_range(start, stop, step):
    span = list(range(start, stop, step))
    text = f"seed={start}:{stop}:{step}"
    if span:
        assert parse_axis(text) == ("seed", span)
    else:
        with pytest.raises(AxisError):
            parse_axis(text)
