"""Job specs: defaults per method, JSON round trip, and errors that name the field."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from lifrnn.specs import SOCSpec, describe_validation_error, parse_spec, spec_sha256


def test_defaults_follow_the_method():
    hennequin = parse_spec({"kind": "soc"})
    kao = parse_spec({"kind": "soc", "method": "kao2021"})
    assert isinstance(hennequin, SOCSpec) and isinstance(kao, SOCSpec)
    assert (hennequin.fraction_excitatory, hennequin.p, hennequin.rate) == (0.5, 0.1, 10.0)
    assert hennequin.target_abscissa == 0.15
    assert (kao.fraction_excitatory, kao.p, kao.rate, kao.target_abscissa) == (0.8, 0.2, 1.0, 0.81)
    assert kao.n_excitatory == 160


def test_explicit_values_win_over_defaults():
    spec = parse_spec({"kind": "soc", "method": "kao2021", "rate": 0.5, "p": 0.3})
    assert isinstance(spec, SOCSpec)
    assert (spec.rate, spec.p) == (0.5, 0.3)
    assert spec.parameters().rate == 0.5


@given(
    n=st.integers(10, 2000),
    seed=st.integers(0, 2**63 - 1),
    method=st.sampled_from(["hennequin2014", "kao2021"]),
)
def test_round_trip_through_json(n, seed, method):
    spec = parse_spec({"kind": "soc", "n": n, "seed": seed, "method": method})
    again = parse_spec(spec.model_dump_json())
    assert again == spec
    assert spec_sha256(again) == spec_sha256(spec)


def test_hash_changes_with_the_computation():
    assert spec_sha256(parse_spec({"kind": "soc", "seed": 1})) != spec_sha256(
        parse_spec({"kind": "soc", "seed": 2})
    )
    # Defaults made explicit are the same computation.
    assert spec_sha256(parse_spec({"kind": "soc"})) == spec_sha256(
        parse_spec({"kind": "soc", "p": 0.1, "rate": 10})
    )


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"kind": "soc", "fraction_excitatory": 0.999}, "fraction_excitatory", "inhibitory"),
        ({"kind": "soc", "n": 12, "fraction_excitatory": 0.01}, "fraction_excitatory", "0 excit"),
        ({"kind": "soc", "p": 0}, "p", "greater than 0"),
        ({"kind": "soc", "p": 1.5}, "p", "less than or equal to 1"),
        ({"kind": "soc", "rate": -1}, "rate", "greater than 0"),
        ({"kind": "soc", "n": 3}, "n", "greater than or equal to 10"),
        ({"kind": "soc", "method": "hennequin2015"}, "method", "hennequin2014"),
        ({"kind": "soc", "device": "tpu"}, "device", "cuda"),
        ({"kind": "soc", "sead": 1}, "sead", "Extra inputs"),
        ({"kind": "socc"}, "spec", "socc"),
    ],
)
def test_bad_specs_name_the_field(spec, field, reason):
    with pytest.raises(ValidationError) as caught:
        parse_spec(spec)
    message = describe_validation_error(caught.value)
    assert message.startswith(f"{field}:")
    assert reason in message


def test_json_text_is_accepted():
    spec = parse_spec(json.dumps({"kind": "soc", "n": 30}))
    assert isinstance(spec, SOCSpec) and spec.n == 30
