"""SMS length in segments (docs/templates.md, "What lint checks").

A message that fits the GSM 03.38 alphabet is sent as GSM-7: 160 septets in one
segment, 153 per segment once split, and the extension characters take two septets
(and are never split across segments). Any other character switches the whole
message to UCS-2: 70 UTF-16 code units in one segment, 67 per segment once split
(a surrogate pair is never split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    segments: int
    units: int  # GSM-7 septets or UTF-16 code units


GSM7 = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    return GSM7.issuperset(text)


def _split(sizes: list[int], multi: int) -> int:
    """Segments of ``multi`` units needed, once a message is split, for characters of
    these unit sizes; a character is never split."""
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def segments(text: str) -> SegmentInfo:
    if is_gsm7(text):
        units = len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION)
        if units <= 160:  # one segment: no need to place each character
            return SegmentInfo("GSM-7", 1, units)
        if units == len(text):  # no two-unit character: every split is 153 characters
            return SegmentInfo("GSM-7", -(-units // 153), units)
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SegmentInfo("GSM-7", _split(sizes, 153), units)
    units = len(text.encode("utf-16-le")) // 2
    if units <= 70:
        return SegmentInfo("UCS-2", 1, units)
    if units == len(text):
        return SegmentInfo("UCS-2", -(-units // 67), units)
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo("UCS-2", _split(sizes, 67), units)
