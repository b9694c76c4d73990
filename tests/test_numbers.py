"""The one number formatter (sitegen/figures/numbers.py): prose, axes and tooltips write numbers alike."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, strategies as st

from sitegen.figures.numbers import format_number, format_ticks, from_spec, plain


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 9))
def test_a_number_reads_back_as_itself_and_never_breaks(v, digits):
    text = format_number(v, digits)
    assert "e" not in text and "-" not in text and " " not in text  # no 1e-05, no hyphen, no breakable space
    back, exact = Decimal(plain(text)), Decimal(v)  # Decimal: 2 × 10³⁰⁸ is a fine rounding of 1.5e308
    assert abs(back - exact) <= abs(exact) * Decimal(10) ** (1 - digits) / 2 * Decimal("1.000001")


def test_examples_from_the_issue():
    assert format_number(1.2e-5) == "1.2\u202f×\u202f10⁻⁵"
    assert format_number(3e26) == "3\u202f×\u202f10²⁶"
    assert format_number(-0.5) == "−0.5"
    assert format_number(12300) == "12,300"
    assert format_number(1024) == "1024"
    assert format_number(1e-4) == "10⁻⁴"


def test_an_axis_uses_one_notation():
    assert format_ticks([1e-4, 1e-3, 1e-2], log=True) == ["10⁻⁴", "10⁻³", "10⁻²"]
    assert format_ticks([0.001, 0.01, 0.1], log=True) == ["0.001", "0.01", "0.1"]
    assert format_ticks([16, 64, 256, 1024], log=True) == ["16", "64", "256", "1024"]
    assert format_ticks([0, 0.2, 0.4, 0.6000000000000001]) == ["0", "0.2", "0.4", "0.6"]
    assert format_ticks([0, 5e-5, 1e-4]) == ["0", "5\u202f×\u202f10⁻⁵", "10⁻⁴"]


def test_a_format_spec_keeps_its_digits_and_our_signs():
    assert from_spec(1.23e-5, ".2e") == "1.23\u202f×\u202f10⁻⁵"
    assert from_spec(-0.5, ".2f") == "−0.50"
    assert from_spec(0.25, ".1%") == "25.0%"
    assert from_spec(1234567, ",.0f") == "1,234,567"
