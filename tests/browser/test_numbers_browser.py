"""figures.js writes numbers exactly as sitegen/figures/numbers.py does (tooltips against prose and axes)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sitegen.figures.numbers import format_number

JS = Path(__file__).resolve().parents[2] / "sitegen" / "static" / "figures.js"
VALUES = [0.0, 1.0, -1.0, 1.2e-5, -1.2e-5, 3e26, 0.001, 0.00099995, 1e-4, 12300.0, 1234.5, 0.125, -0.125, 2.5,
          999999.5, 1e6, 1.5e-6, 0.0123, 1024.0, 65536.0, 123456.789, 9.9996, 0.30000000000000004, 1e-300, 1.7e308,
          5e-324, 7.0, 0.1, 1 / 3, -2 / 3, 3.14159265358979, 6.02214076e23, 1.380649e-23, 299792458.0, 0.5e-3,
          float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("digits", [1, 3, 4, 7])
def test_python_and_the_browser_write_the_same_numbers(browser, digits):
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>numbers</title>")
        page.add_script_tag(content=JS.read_text(encoding="utf-8"))
        got = page.evaluate("([vs, d]) => vs.map((v) => window.sitegenFigures.format(v, d))",
                            [[v if v == v and abs(v) != float("inf") else str(v) for v in VALUES], digits])
        js = page.evaluate("([d]) => [NaN, Infinity, -Infinity].map((v) => window.sitegenFigures.format(v, d))", [digits])
    finally:
        page.close()
    want = [format_number(v, digits) for v in VALUES]
    assert got[:-3] == want[:-3]
    assert js == want[-3:]
