"""docs/specs.md is what the spec models say: regenerated, it must not change."""

from __future__ import annotations

from pathlib import Path

from lifrnn.spec_docs import KINDS, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "specs.md"


def test_the_spec_reference_is_up_to_date():
    assert DOCS.read_text() == render(), "docs/specs.md is stale: run `make docs`"


def test_every_kind_and_every_field_is_documented_with_its_limits():
    text = render()
    for kind, model in KINDS:
        assert f'## `kind: "{kind}"`' in text
        for name in model.model_fields:
            if name != "kind":
                assert f"| `{name}` |" in text, (kind, name)
    assert "| `movements.duration` | number | 0.6 | > 0, <= 10.0 |" in text  # nested, limits
