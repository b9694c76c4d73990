"""TeX's spacing and display style for latex2mathml's MathML, so that formulas typeset in MathML Core.

latex2mathml turns TeX into MathML faithfully token by token, but MathML Core (what Chromium, Firefox and
Safari draw) spaces only operators, by their dictionary entry, and leaves the rest to the markup. What
TeX does by class and latex2mathml does not write down is done here, on the element tree:

* a function name (``\\log``, ``\\exp``, ``\\operatorname{tr}``) is an operator atom: a thin space
  after it unless a bracket or a relation follows (``−log p``, ``log 2π``, but ``exp(x)``), and one
  before it after an ordinary atom (``½ log|K|``);
* ``|`` is an ordinary symbol in TeX (``p(y | X)`` is written with ``\\mid``), not an infix operator;
* display math is in display style, and a large operator or a limit with scripts puts them under and
  over (``munder``/``mover``, ``movablelimits``): a big Σ with its index below, as TeX draws it;
* a prime is an operator glyph already raised (``x′``), not a letter lifted once more;
* inline math is split after its top-level relations and binary operators into several ``<math>``
  elements, the places where TeX may break a line, so a long formula wraps in a narrow column instead
  of pushing the page sideways.

Only well-formed output of latex2mathml reaches this module; anything it does not recognise it leaves
as it was. It works on latex2mathml's element tree (:func:`typeset_element`), with the tags' namespace
left implicit and written once, on ``<math>``: the text latex2mathml would write and this module parse
again costs more than the typesetting, so it is made only where the tree holds something other than
plain text and character references (:func:`_plain`).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NS = "http://www.w3.org/1998/Math/MathML"
ET.register_namespace("", NS)  # MathML read back with ElementTree (tests, tools) is written as we write it

THIN = "0.1667em"
# operators whose scripts go under and over in display style (TeX's \displaylimits)
LARGE_OPS = set("∑∏∐⋀⋁⋂⋃⨀⨁⨂⨄⨆")
LIMIT_NAMES = {"lim", "limsup", "liminf", "max", "min", "sup", "inf", "det", "gcd", "Pr", "argmax", "argmin"}
OPENING = set("([{⟨⌈⌊‖|")
CLOSING = set(")]}⟩⌉⌋‖|")
# where TeX allows a line break in inline math: after a relation or a binary operator at the top level
RELATIONS = set("=<>≤≥≠≈∼≃≅≡∝→←↔⇒⇐⇔∈∉⊂⊃⊆⊇≪≫≺≻∣∥:")
BINARY = set("+−×·∓±∗⋅∘∪∩∧∨⊕⊗")
PRIMES = set("′″‴")
SCRIPTS = {"msub", "msup", "msubsup", "munder", "mover", "munderover"}
UNDER_OVER = {"msub": "munder", "msup": "mover", "msubsup": "munderover"}


def _tag(el) -> str:
    return el.tag


def _q(name: str) -> str:
    return name


def _text(el) -> str:
    return (el.text or "").strip()


def _is_name(el) -> bool:
    """A function name: a word of letters as one token (latex2mathml writes \\log as <mi>log</mi> and
    \\max, \\operatorname{tr} as <mo>max</mo>, <mo>tr</mo>)."""
    t = _text(el)
    return _tag(el) in ("mi", "mo") and len(t) > 1 and t.isalpha() and len(el) == 0


def _name_atom(el) -> bool:
    """The element is a function name, alone or as the base of its scripts (``\\log_2``, ``\\max_i``)."""
    if _is_name(el):
        return True
    return _tag(el) in SCRIPTS and len(el) > 0 and _is_name(el[0])


def _mo_text(el) -> str | None:
    return _text(el) if _tag(el) == "mo" else None


def _space() -> ET.Element:
    sp = ET.Element(_q("mspace"))
    sp.set("width", THIN)
    return sp


def _fix_tokens(el, display: bool) -> None:
    for child in list(el):
        _fix_tokens(child, display)
    tag = _tag(el)
    if tag == "mo" and _text(el) in ("|", "‖") and el.get("fence") != "true" and "lspace" not in el.attrib:
        el.set("lspace", "0")  # an ordinary bar, as TeX spaces |K| and p(y | X)
        el.set("rspace", "0")
    if _is_name(el) and tag == "mo" and _text(el) not in LIMIT_NAMES:
        # \operatorname{tr}: drawn upright as a name, spaced by _space_names, not as an unknown operator
        el.tag = _q("mi")
        el.attrib.clear()
    if tag in ("msup", "msubsup") and len(el) == (2 if tag == "msup" else 3):
        sup = el[-1]
        if _tag(sup) in ("mi", "mo") and len(sup) == 0 and _text(sup) and set(_text(sup)) <= PRIMES:
            # the prime glyph is already a raised, small mark: written as a script it is raised and shrunk
            # twice (fonts keep its script form behind a feature browsers do not turn on), so it follows its
            # base on the line, and a subscript follows both (x′_d)
            prime = ET.Element(_q("mo"), {"lspace": "0", "rspace": "0"})
            prime.text = _text(sup)
            base = el[0]
            primed = ET.Element(_q("mrow"))
            primed.extend([base, prime])
            subscript = el[1] if tag == "msubsup" else None
            for k in list(el):
                el.remove(k)
            el.attrib.clear()
            if subscript is None:
                el.tag = _q("mrow")
                el.extend([base, prime])
            else:
                el.tag = _q("msub")
                el.extend([primed, subscript])
            return
    if tag in UNDER_OVER and len(el) > 0:
        base = el[0]
        big = _tag(base) == "mo" and _text(base) in LARGE_OPS
        limit = _is_name(base) and _text(base) in LIMIT_NAMES
        if big or limit:
            base.tag = _q("mo")
            base.set("movablelimits", "true")  # under/over in display style, beside as scripts inline
            if limit:
                base.set("lspace", "0")
                base.set("rspace", "0")
            el.tag = _q(UNDER_OVER[tag])
    if tag == "mo" and _text(el) in LIMIT_NAMES and len(el) == 0:
        el.set("lspace", "0")
        el.set("rspace", "0")


def _space_names(el) -> None:
    """Thin spaces around function names in every row, as TeX puts between an Op atom and its neighbours."""
    for child in list(el):
        _space_names(child)
    if _tag(el) not in ("mrow", "math", "mstyle", "msqrt", "mtd", "mpadded", "mphantom", "menclose"):
        return
    kids = list(el)
    out: list = []
    for i, k in enumerate(kids):
        if _name_atom(k):
            prev = kids[i - 1] if i > 0 else None
            if prev is not None and (_mo_text(prev) is None or _mo_text(prev) in CLOSING) \
                    and not (_tag(prev) == "mspace"):
                out.append(_space())
            out.append(k)
            nxt = kids[i + 1] if i + 1 < len(kids) else None
            if nxt is not None and _mo_text(nxt) is None and _tag(nxt) != "mspace" and not _name_atom(nxt) \
                    and not _opens(nxt):
                out.append(_space())
            continue
        out.append(k)
    if len(out) != len(kids):
        for k in kids:
            el.remove(k)
        el.extend(out)


def _opens(el) -> bool:
    """An element that begins with an opening bracket (a \\left( group), after which TeX adds no space."""
    while _tag(el) == "mrow" and len(el):
        el = el[0]
    return _tag(el) == "mo" and _text(el) in OPENING


def _breakable_rows(math) -> list[list]:
    """The top-level row of an inline formula cut after each relation and binary operator that TeX
    would break at (not a leading sign, not an operator right after another)."""
    row = math
    while len(row) == 1 and _tag(row[0]) == "mrow":
        row = row[0]
    kids = list(row)
    pieces: list[list] = [[]]
    depth = 0  # inside an unmatched ( [ {: never break between a bracket and its partner
    for i, k in enumerate(kids):
        pieces[-1].append(k)
        t = _mo_text(k)
        if t is None:
            continue
        if t in "([{⟨⌈⌊":
            depth += 1
        elif t in ")]}⟩⌉⌋":
            depth = max(0, depth - 1)
        if depth or i == 0 or i == len(kids) - 1:
            continue
        if _mo_text(kids[i - 1]) is not None and _mo_text(kids[i - 1]) not in CLOSING:
            continue  # a sign after an operator: unary, not a break point
        if t in RELATIONS or t in BINARY:
            if "lspace" not in k.attrib:
                # the operator ends its piece: keep the spacing it had between two operands
                width = "0.2778em" if t in RELATIONS else "0.2222em"
                k.set("lspace", width)
                k.set("rspace", width)
            pieces.append([])
    return [p for p in pieces if p]


def typeset(mathml: str, display: bool) -> str:
    """latex2mathml's output, respaced and restyled as described in the module docstring. Inline math may
    come back as several ``<math>`` elements, one per breakable piece."""
    try:
        root = ET.fromstring(mathml)
    except ET.ParseError:
        return mathml
    prefix = f"{{{NS}}}"
    for el in root.iter():
        if not el.tag.startswith(prefix) or any(k[:1] == "{" for k in el.attrib):
            return mathml  # not latex2mathml's: nothing here knows what it means
        el.tag = el.tag[len(prefix):]
    return _typeset(root, display)


def typeset_element(math: ET.Element, display: bool) -> str:
    """:func:`typeset` for latex2mathml's element tree (``convert_to_element``), which it changes: the
    same result as typesetting the text ``convert`` makes of the tree, without writing and parsing it."""
    if not _plain(math):
        from xml.sax.saxutils import unescape

        return typeset(unescape(ET.tostring(math, encoding="unicode")), display)  # latex2mathml's convert()
    for el in math.iter():
        if el.text and "&" in el.text:
            el.text = CHAR_REF.sub(_char, el.text)
        if el.tail and "&" in el.tail:
            el.tail = CHAR_REF.sub(_char, el.tail)
    del math.attrib["xmlns"]
    return _typeset(math, display)


#: what latex2mathml writes for a symbol: a character reference (``&#x003B1;``), resolved by a parse
CHAR_REF = re.compile(r"&#x([0-9A-Fa-f]{1,6});")
#: text an XML parser would not take as written: markup, references other than the above, line ends it
#: rewrites, characters XML forbids. Where any occurs the written text is parsed, as it always was.
UNPLAIN = re.compile("[<&\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]|]]>")
UNPLAIN_ATTR = re.compile("[<&\t\n\r\x00-\x1f\ud800-\udfff\ufffe\uffff]")


def _char(m) -> str:
    return chr(int(m.group(1), 16))


def _plain(math) -> bool:
    """The tree is latex2mathml's usual one, whose text parses back to exactly its own content with its
    character references resolved (to characters XML allows), and whose attributes parse back as they are."""
    if math.tag != "math" or math.get("xmlns") != NS:
        return False
    for el in math.iter():
        if not isinstance(el.tag, str) or ":" in el.tag or "{" in el.tag or (el is not math and "xmlns" in el.attrib):
            return False
        for key, value in el.attrib.items():
            if ":" in key or "{" in key or UNPLAIN_ATTR.search(value):
                return False
        for text in (el.text, el.tail):
            if text and UNPLAIN.search(CHAR_REF.sub(_char_or_bad, text) if "&" in text else text):
                return False
    return True


def _char_or_bad(m) -> str:
    code = int(m.group(1), 16)
    ok = code in (0x9, 0xA) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    return chr(code) if ok else "<"  # a reference XML forbids: not plain


def _typeset(root, display: bool) -> str:
    _fix_tokens(root, display)
    _space_names(root)
    if display:
        root.set("display", "block")
        root.set("displaystyle", "true")
        return _serialise(root)
    pieces = _breakable_rows(root)
    if len(pieces) <= 1:
        return _serialise(root)
    out = []
    for piece in pieces:
        m = ET.Element(root.tag, dict(root.attrib))
        r = ET.SubElement(m, _q("mrow"))
        r.extend(piece)
        out.append(_serialise(m))
    # no space between the pieces (the operator carries its own); a break is allowed there
    return '<span class="math-inline">' + "<wbr>".join(out) + "</span>"


def _serialise(root) -> str:
    """The tree as XML, its namespace declared on the root: what ``ET.tostring`` writes for the tree in
    that namespace, without its general machinery (most of the time it took)."""
    out: list[str] = []
    _write(root, out, f' xmlns="{NS}"')
    return "".join(out).replace(" />", "/>")


def _write(el, out: list[str], xmlns: str = "") -> None:
    tag = el.tag
    out.append(f"<{tag}{xmlns}")
    for k, v in el.attrib.items():
        out.append(f' {k}="{_attr(v)}"')
    text = el.text
    if text or len(el):
        out.append(">")
        if text:
            out.append(_cdata(text))
        for child in el:
            _write(child, out)
        out.append(f"</{tag}>")
    else:
        out.append(" />")
    if el.tail:
        out.append(_cdata(el.tail))


def _cdata(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _attr(text: str) -> str:
    if "&" in text or "<" in text or ">" in text or '"' in text or "\r" in text or "\n" in text or "\t" in text:
        return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
                .replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#09;"))
    return text
