"""The link checker's view of a page: its hrefs/srcs and ids, found as the reference patterns find them."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen.stages import _ID_NAME, HREF, IDS, attribute_values

PIECES = st.sampled_from([' href="', ' src="', ' id="', 'href="', 'src=', 'id', ' id = "', '\u2003href="', '\thref ="',
                          '"', '=', ' ', 'x', '/a', '#b', '\n', 'hrefsrc="', 'xid="', '<a', '>', 'src', "'"])
HTML = st.lists(PIECES, max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(HTML)
def test_attribute_values_are_what_the_reference_patterns_find(text):
    assert attribute_values(text) == HREF.findall(text)
    assert attribute_values(text, _ID_NAME) == IDS.findall(text)


def test_whitespace_before_a_name_is_what_backslash_s_matches():
    space = re.compile(r"\s")
    assert all(bool(space.match(chr(c))) == chr(c).isspace() for c in range(0x110000))


def test_values_of_a_page():
    page = '<a href="/x/">x</a><img src="i.png" alt=""><h2 id="top">T</h2><p data-href="no">xid="no" id="n&amp;1"</p>'
    assert attribute_values(page) == ["/x/", "i.png"]
    assert attribute_values(page, _ID_NAME) == ["top", "n&amp;1"]
