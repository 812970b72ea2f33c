"""Wording no message may use, and words that tell of a debt (docs/templates.md §7).

The built-in lists cover, in English and Chinese, what the rules forbid whoever the
creditor is: threats of arrest, jail or violence; impersonating the police, courts or
government; threats to tell family, friends or employer (爆通讯录); obscene or
humiliating words. ``policy.yaml`` ``forbidden:`` adds phrases of its own.

Matching is case-insensitive. A phrase written in Latin letters matches whole words
only (``arrest`` matches "arrested" through its listed forms, never "arrears"); a
Chinese phrase matches anywhere, as Chinese has no spaces between words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

THREAT = "threat of arrest, jail or violence"
IMPERSONATION = "impersonates the police, a court or the government"
THIRD_PARTY = "threat to contact family, friends or employer"
ABUSE = "obscene or humiliating wording"
POLICY = "forbidden by policy.yaml"

BUILTIN: dict[str, tuple[str, ...]] = {
    THREAT: (
        "arrest",
        "arrested",
        "arresting",
        "jail",
        "jailed",
        "prison",
        "imprison",
        "imprisoned",
        "handcuffs",
        "criminal charges",
        "criminal prosecution",
        "criminal record",
        "prosecute you",
        "deport",
        "deported",
        "hurt you",
        "beat you",
        "kill",
        "violence",
        "we know where you live",
        "come to your home",
        "逮捕",
        "拘留",
        "拘役",
        "坐牢",
        "入狱",
        "蹲监狱",
        "判刑",
        "刑事责任",
        "追究刑事",
        "上门催收",
        "上门找你",
        "人身安全",
        "后果自负",
        "让你好看",
        "打断",
        "弄死",
        "暴力",
    ),
    IMPERSONATION: (
        "police",
        "sheriff",
        "law enforcement",
        "FBI",
        "federal agent",
        "court order",
        "court officer",
        "officer of the court",
        "summons",
        "subpoena",
        "warrant",
        "government agency",
        "attorney general",
        "公安",
        "警察",
        "警方",
        "派出所",
        "法院传票",
        "法院执行",
        "法官",
        "检察院",
        "政府部门",
        "执法人员",
    ),
    THIRD_PARTY: (
        "your employer",
        "your boss",
        "your family",
        "your friends",
        "your relatives",
        "your neighbors",
        "your neighbours",
        "your coworkers",
        "your co-workers",
        "your colleagues",
        "your contacts",
        "your references",
        "爆通讯录",
        "通讯录",
        "联系人",
        "紧急联系人",
        "家人",
        "亲友",
        "亲属",
        "亲戚",
        "朋友",
        "同事",
        "邻居",
        "单位",
        "领导",
    ),
    ABUSE: (
        "deadbeat",
        "loser",
        "scum",
        "idiot",
        "stupid",
        "liar",
        "thief",
        "crook",
        "shameful",
        "disgrace",
        "fuck",
        "shit",
        "bitch",
        "bastard",
        "老赖",
        "骗子",
        "无赖",
        "不要脸",
        "人渣",
        "垃圾",
        "废物",
        "去死",
        "王八蛋",
        "混蛋",
        "傻",
        "滚",
        "曝光",
        "丢人",
        "没脸",
    ),
}

# What a limited-content voicemail, and a call before the person is identified, must not
# say (Reg F 1006.2(j); GB/T 45251-2025: no disclosure to third parties).
DEBT_WORDS: tuple[str, ...] = (
    "debt",
    "debts",
    "owe",
    "owed",
    "owing",
    "overdue",
    "past due",
    "balance",
    "payment",
    "payments",
    "pay",
    "collect",
    "collection",
    "collector",
    "arrears",
    "amount",
    "account",
    "欠款",
    "欠费",
    "债务",
    "逾期",
    "还款",
    "账单",
    "催收",
    "账户",
    "金额",
    "借款",
    "贷款",
)


@dataclass(frozen=True)
class Phrase:
    text: str
    category: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Hit:
    phrase: Phrase
    matched: str  # the text as it appears


def _pattern(text: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in text.split())
    head = r"(?<![A-Za-z0-9])" if text[:1].isascii() and text[:1].isalnum() else ""
    tail = r"(?![A-Za-z0-9])" if text[-1:].isascii() and text[-1:].isalnum() else ""
    return re.compile(head + body + tail, re.IGNORECASE)


@lru_cache(maxsize=32)
def phrases(extra: tuple[str, ...] = ()) -> tuple[Phrase, ...]:
    """The built-in phrases, then ``extra`` (policy ``forbidden:``) not already listed."""
    found: list[Phrase] = []
    seen: set[str] = set()
    listed = [(t, c) for c, texts in BUILTIN.items() for t in texts]
    for text, category in [*listed, *((t, POLICY) for t in extra)]:
        key = " ".join(text.casefold().split())
        if not key or key in seen:
            continue
        seen.add(key)
        found.append(Phrase(text, category, _pattern(text)))
    return tuple(found)


def find(text: str, wanted: Iterable[Phrase]) -> Iterator[Hit]:
    """Each phrase found in ``text``, once, with the text as written."""
    for phrase in wanted:
        m = phrase.pattern.search(text)
        if m:
            yield Hit(phrase, m.group(0))


@lru_cache(maxsize=1)
def debt_phrases() -> tuple[Phrase, ...]:
    return tuple(Phrase(t, "debt", _pattern(t)) for t in DEBT_WORDS)
