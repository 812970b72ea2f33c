"""Inbound SMS keywords (docs/http.md): the whole message, any case, any punctuation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.keywords import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    InboundKind,
    classify_inbound,
)

TABLE = [
    *[(w, InboundKind.opt_out) for w in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END")],
    *[(w, InboundKind.opt_out) for w in ("QUIT", "REVOKE", "OPTOUT", "OPT OUT")],
    *[(w, InboundKind.opt_in) for w in ("START", "UNSTOP", "YES")],
    *[(w, InboundKind.help) for w in ("HELP", "INFO")],
    ("退订", InboundKind.opt_out),
    ("TD", InboundKind.opt_out),
]


@pytest.mark.parametrize(("body", "kind"), TABLE)
def test_keyword_table(body: str, kind: InboundKind) -> None:
    assert classify_inbound(body) == kind
    assert classify_inbound(body.lower()) == kind
    assert classify_inbound(f"  {body.title()}!  ") == kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (" stop! ", InboundKind.opt_out),
        ("Stop.", InboundKind.opt_out),
        ("opt-out", InboundKind.opt_out),
        ("Opt  Out", InboundKind.opt_out),
        ("ＳＴＯＰ", InboundKind.opt_out),  # full-width letters
        ("退订！", InboundKind.opt_out),
        ('"Help?"', InboundKind.help),
        ("yes 👍", InboundKind.opt_in),
        ("Stop texting me", InboundKind.other),
        ("I will pay on Friday", InboundKind.other),
        ("stopp", InboundKind.other),
        ("STOP 2", InboundKind.other),
        ("", InboundKind.other),
        ("   ", InboundKind.other),
        ("!!!", InboundKind.other),
    ],
)
def test_examples(body: str, kind: InboundKind) -> None:
    assert classify_inbound(body) == kind


KEYWORDS = sorted(
    [(w, InboundKind.opt_out) for w in OPT_OUT_WORDS]
    + [(w, InboundKind.opt_in) for w in OPT_IN_WORDS]
    + [(w, InboundKind.help) for w in HELP_WORDS]
)
EDGES = st.text(alphabet=st.sampled_from(" \t\n.,!?;:'\"()-*~…。！？，"), max_size=6)


@given(
    keyword=st.sampled_from(KEYWORDS),
    cases=st.lists(st.booleans(), min_size=12, max_size=12),
    before=EDGES,
    after=EDGES,
)
def test_case_spaces_and_punctuation_around_a_keyword_do_not_matter(
    keyword: tuple[str, InboundKind], cases: list[bool], before: str, after: str
) -> None:
    word, kind = keyword
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(word, cases, strict=False))
    mixed += word[len(cases) :]
    assert classify_inbound(before + mixed + after) == kind


@given(
    keyword=st.sampled_from(KEYWORDS),
    tail=st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8),
)
def test_a_keyword_inside_a_longer_message_is_not_a_keyword(
    keyword: tuple[str, InboundKind], tail: str
) -> None:
    body = f"{keyword[0]} {tail}"
    if classify_inbound(body) != InboundKind.other:
        # only when the whole message happens to be another keyword ("opt" + "out")
        assert body.casefold() in OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS
