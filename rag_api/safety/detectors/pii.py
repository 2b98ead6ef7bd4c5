"""Structured PII and secrets: patterns find candidates, validators and context words decide the score.

A candidate that fails its checksum (Luhn, IBAN mod-97, SSN issuing rules, address ranges) is dropped, and
values reserved for documentation (RFC 2606 domains, RFC 5737 networks, the fictional 555-01xx phone range)
are not personal data, so the lab's own knowledge base and answers raise no flag. Pure text, no model.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np

from rag_api.safety.detectors import validators
from rag_api.safety.detectors.base import PII_TYPES, DetectorResult, PIIEntity

# Scores: a validated identifier is near-certain; a bare shape without context stays under the threshold.
VALIDATED, LIKELY, WITH_CONTEXT, SHAPE_ONLY = 0.95, 0.85, 0.8, 0.35
LABELLED = 0.97  # a value right after its own label ("driver's licence no."): beats any other reading of it
CONTEXT_WINDOW = 48  # characters before a candidate searched for context words


def _context(words: str) -> re.Pattern[str]:
    return re.compile(rf"(?i)\b(?:{words})")


# Words people write next to a phone number (reach me at, not answering at, messages to my registered ...).
PHONE_CONTEXT = _context(r"phone|call|tel\b|telephone|mobile|cell|fax|contact|reach|text\b|texts|sms|whatsapp"
                         r"|dial|ring|voicemail|landline|hotline|answer|messag|registered|number|nummer|telefon"
                         r"|handy|ruf|erreichbar")  # fmt: skip
SSN_CONTEXT = _context(r"ssn|social security|social-security|soc\.? sec|taxpayer|tin\b")
CARD_CONTEXT = _context(r"card|credit|debit|visa|mastercard|amex|kreditkarte|karte")
LICENSE_CONTEXT = re.compile(
    r"(?i)\b(?:driv(?:er'?s?|ing)[\s-]*(?:licen[cs]e|lic\b|permit)|\bd\.?l\.?n?\b\s*(?:#|no|number|:)"
    r"|licen[cs]e\s*(?:number|no\b|#|id)|führerschein)"
)

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,})(?![\w-])")  # fmt: skip
_EXT = r"(?:\s*(?:x|ext\.?|extension|#)\s*\d{1,6})?"
NANP_PHONE = re.compile(
    r"(?<![\w+-])(?:(?:\+|00)?1[\s.-]?|001[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
    + _EXT
    + r"(?![\w-])"
)
INTL_PHONE = re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[\s.-]?\(?\d{1,5}\)?){2,6}" + _EXT + r"(?![\w-])")
LOCAL_PHONE = re.compile(r"(?<![\w+])\(?0\d{1,4}\)?[\s/.-]\d{2,8}(?:[\s.-]\d{2,6}){0,3}(?![\w-])")
# Any grouped digit run (7-13 digits): a phone number only when a phone word comes just before it.
GROUPED_DIGITS = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?\(?\d{2,5}\)?(?:[\s.-]\d{2,5}){1,4}(?![\w-])")
# A number named as something else just before it ("order number 1234-5678", "ticket no. 4821 9930"): not a
# phone, even though "number" is also a phone word.
OTHER_NUMBER = re.compile(
    r"(?i)\b(?:order|invoice|ticket|case|ref(?:erence)?|tracking|serial|part|model|booking|confirmation"
    r"|transaction|policy|item|build|version|account|customer|membership|claim|shipment|parcel|bestell|rechnung"
    r"|kunden|auftrag)s?[\s-]*(?:number|no\.?|nr\.?|num\.?|id|#|nummer)?\s*[:#]?\s*$"
)
DATE_LIKE = re.compile(r"^(?:19|20)\d\d[-./]\d\d[-./]\d\d|^\d\d[-./]\d\d[-./](?:19|20)\d\d$")
CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){11,18}(?![\d-]|[.,]\d)")
SSN = re.compile(r"(?<![\d-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\d-])")
BARE_SSN = re.compile(r"(?<![\d-])(\d{3})(\d{2})(\d{4})(?![\d-])")
IBAN = re.compile(r"(?i)(?<![A-Z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){10,30}")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?![\w]|\.\d)")
IPV6 = re.compile(r"(?i)(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:/\d{1,3})?(?![\w:])")
VERSION_WORDS = re.compile(r"(?i)(?:\bv|version|release|build|ver\.?)\s*$")
LICENSE_TOKEN = re.compile(
    r"(?<![\w-])(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])|\s(?=\d{3}\b)){4,19}(?![\w-])"
)
LICENSE_SHAPE = re.compile(r"(?<![\w-])[A-Z]\d{6,13}(?![\w-])")

SECRET_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",  # AWS access key id
        r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
        r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
        r"\bsk-(?:proj-|live-|ant-)?[A-Za-z0-9_-]{20,}\b",  # OpenAI / Anthropic style
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
        r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
        r"\bglpat-[A-Za-z0-9_-]{20,}\b",  # GitLab
        r"\bnpm_[A-Za-z0-9]{36}\b",
        r"-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----",
        r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",  # JWT
        # credentials in a connection URL
        r"(?i)\b(?:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqp)://[^\s:/@]+:[^\s@/]{3,}@",
    )
)
SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?(?:key|token)|auth[_-]?token|token|passw(?:or)?d|pwd"
    r"|client[_-]?secret|private[_-]?key)\b[\"']?\s*(?:[:=]|is)\s*[\"']?([A-Za-z0-9_\-/+=.!@#$%^&*~?]{12,})"
)
MIN_SECRET_ENTROPY = 3.0  # bits per character: random keys score ~4+, words and placeholders lower


def _shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def _has_context(text: str, start: int, pattern: re.Pattern[str], after: int = 0) -> bool:
    window = text[max(0, start - CONTEXT_WINDOW) : start]
    if after:
        window += " " + text[start : start + after]
    return pattern.search(window) is not None


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _emails(text: str) -> Iterator[PIIEntity]:
    for m in EMAIL.finditer(text):
        if not validators.reserved_email_domain(m.group(1)):
            yield PIIEntity("EMAIL", m.start(), m.end(), VALIDATED)


def _fictional_nanp(national: str) -> bool:
    """555-0100..555-0199 is reserved for fiction; the lab's knowledge base uses it."""
    return national[3:8] == "55501" or national[:5] == "55501"


def _phones(text: str) -> Iterator[PIIEntity]:
    for m in NANP_PHONE.finditer(text):
        raw = re.split(r"(?i)\s*(?:x|ext|extension|#)", m.group())[0]
        digits = _digits(raw)
        national = digits[-10:]
        if _fictional_nanp(national):
            continue
        separated = bool(re.search(r"[\s().-]", raw.strip())) or raw.startswith("+")
        if _has_context(text, m.start(), PHONE_CONTEXT):
            score = WITH_CONTEXT if not separated else VALIDATED
        else:  # area and exchange codes never start with 0 or 1: such a run is less likely a real number
            score = (LIKELY if national[0] not in "01" else 0.6) if separated else SHAPE_ONLY
        yield PIIEntity("PHONE", m.start(), m.end(), score)
    for m in INTL_PHONE.finditer(text):
        digits = _digits(m.group())
        if 8 <= len(digits) <= 15 and not _fictional_nanp(digits[1:] if digits.startswith("1") else digits):
            yield PIIEntity("PHONE", m.start(), m.end(), LIKELY)
    for m in LOCAL_PHONE.finditer(text):
        count = len(_digits(m.group()))
        if 8 <= count <= 13 and _has_context(text, m.start(), PHONE_CONTEXT):
            yield PIIEntity("PHONE", m.start(), m.end(), WITH_CONTEXT)
        elif 10 <= count <= 11:  # trunk prefix 0 + area + subscriber, as written in Europe: 030 1234 5678
            yield PIIEntity("PHONE", m.start(), m.end(), 0.6)
    for m in GROUPED_DIGITS.finditer(text):
        count = len(_digits(m.group()))
        digits = _digits(m.group())
        if _fictional_nanp(digits[1:] if digits.startswith("1") else digits) or DATE_LIKE.match(m.group()):
            continue
        if OTHER_NUMBER.search(text[max(0, m.start() - CONTEXT_WINDOW) : m.start()]):
            continue
        if 7 <= count <= 13 and _has_context(text, m.start(), PHONE_CONTEXT, after=m.end() - m.start() + 24):
            yield PIIEntity("PHONE", m.start(), m.end(), WITH_CONTEXT)


def _cards(text: str) -> Iterator[PIIEntity]:
    for m in CARD.finditer(text):
        digits = _digits(m.group())
        if not 12 <= len(digits) <= 19 or not validators.luhn_valid(digits):
            continue
        if validators.card_brand_known(digits):
            score = VALIDATED
        elif _has_context(text, m.start(), CARD_CONTEXT):
            score = WITH_CONTEXT
        else:  # a Luhn-valid run of card length; one in ten random runs passes Luhn, so short ones stay low
            score = 0.6 if len(digits) >= 14 else SHAPE_ONLY
        yield PIIEntity("CREDIT_CARD", m.start(), m.end(), score)


def _ssns(text: str) -> Iterator[PIIEntity]:
    for m in SSN.finditer(text):
        if validators.ssn_valid(m.group(1), m.group(3), m.group(4)):
            score = VALIDATED if _has_context(text, m.start(), SSN_CONTEXT) else LIKELY
            yield PIIEntity("US_SSN", m.start(), m.end(), score)
    for m in BARE_SSN.finditer(text):
        if validators.ssn_valid(*m.groups()) and _has_context(text, m.start(), SSN_CONTEXT):
            yield PIIEntity("US_SSN", m.start(), m.end(), WITH_CONTEXT)


def _ibans(text: str) -> Iterator[PIIEntity]:
    for m in IBAN.finditer(text):
        length = validators.IBAN_LENGTHS.get(m.group()[:2].upper())
        if length is None:
            continue
        # Walk the match until the country's length of alphanumerics: a following word is not swallowed.
        taken, end = 0, m.start()
        for index in range(m.start(), m.end()):
            if text[index].isalnum():
                taken += 1
                if taken == length:
                    end = index + 1
                    break
        compact = re.sub(r"[\s-]", "", text[m.start() : end]).upper()
        if taken == length and validators.iban_valid(compact):
            yield PIIEntity("IBAN", m.start(), end, VALIDATED)


def _ips(text: str) -> Iterator[PIIEntity]:
    for pattern in (IPV4, IPV6):
        for m in pattern.finditer(text):
            kind = validators.ip_kind(m.group().split("/")[0])
            if kind in (None, "documentation", "local"):
                continue
            if pattern is IPV4 and VERSION_WORDS.search(text[max(0, m.start() - 12) : m.start()]):
                continue
            if pattern is IPV6 and m.group().count(":") < 2:
                continue
            yield PIIEntity("IP_ADDRESS", m.start(), m.end(), VALIDATED if kind == "public" else LIKELY)


def _driver_licenses(text: str) -> Iterator[PIIEntity]:
    for context in LICENSE_CONTEXT.finditer(text):
        window_start = context.end()
        window = text[window_start : window_start + CONTEXT_WINDOW].upper()
        m = LICENSE_TOKEN.search(window)
        if m and sum(ch.isdigit() for ch in m.group()) >= 4:
            yield PIIEntity("US_DRIVER_LICENSE", window_start + m.start(), window_start + m.end(), LABELLED)
    for m in LICENSE_SHAPE.finditer(text):
        yield PIIEntity("US_DRIVER_LICENSE", m.start(), m.end(), SHAPE_ONLY)


def _secrets(text: str) -> Iterator[PIIEntity]:
    for pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            yield PIIEntity("SECRET", m.start(), m.end(), VALIDATED)
    for m in SECRET_ASSIGNMENT.finditer(text):
        value = m.group(1)
        if (
            _shannon_entropy(value) >= MIN_SECRET_ENTROPY
            and re.search(r"\d", value)
            and re.search(r"[A-Za-z]", value)
        ):
            yield PIIEntity("SECRET", m.start(1), m.end(1), WITH_CONTEXT)


FINDERS: tuple[Callable[[str], Iterator[PIIEntity]], ...] = (
    _emails, _cards, _ibans, _ssns, _phones, _ips, _driver_licenses, _secrets,
)  # fmt: skip
# When two candidates overlap, the more specific reading wins (a card number is not also a phone number).
PRIORITY = {t: i for i, t in enumerate(("SECRET", "EMAIL", "IBAN", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
                                         "PHONE", "US_DRIVER_LICENSE"))}  # fmt: skip


def _resolve_overlaps(candidates: list[PIIEntity]) -> list[PIIEntity]:
    ranked = sorted(candidates, key=lambda e: (-e.score, PRIORITY[e.type], -(e.end - e.start)))
    kept: list[PIIEntity] = []
    for entity in ranked:
        if all(entity.end <= k.start or entity.start >= k.end for k in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: e.start)


class PIIDetector:
    """Entities scoring at or above `threshold` are reported; the text's score is its best entity's."""

    name = "pii"
    categories = ("none", *(t.lower() for t in PII_TYPES))

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def find(self, text: str) -> list[PIIEntity]:
        candidates = [entity for finder in FINDERS for entity in finder(text)]
        # Digit groups inside an IBAN-shaped run (even one failing its checksum) are not phones or cards.
        account_runs = [
            m.span() for m in IBAN.finditer(text) if m.group()[:2].upper() in validators.IBAN_LENGTHS
        ]
        if account_runs:
            candidates = [
                e for e in candidates
                if e.type == "IBAN" or not any(start <= e.start < end for start, end in account_runs)
            ]  # fmt: skip
        return [e for e in _resolve_overlaps(candidates) if e.score >= self.threshold]

    def score(
        self, text: str, embedding: np.ndarray | None = None, sentence_embeddings: np.ndarray | None = None
    ) -> DetectorResult:
        """Pure text: the embedding arguments are accepted for a uniform interface and ignored."""
        entities = tuple(self.find(text))
        if not entities:
            return DetectorResult(0.0, "none")
        top = max(entities, key=lambda e: (e.score, -PRIORITY[e.type]))
        return DetectorResult(top.score, top.type.lower(), entities)

    @staticmethod
    def redact(text: str, entities: tuple[PIIEntity, ...] | list[PIIEntity]) -> str:
        """Each entity replaced by [REDACTED_<TYPE>]; overlapping spans are merged into the first."""
        parts: list[str] = []
        cursor = 0
        for entity in sorted(entities, key=lambda e: e.start):
            if entity.start < cursor:
                continue
            parts.append(text[cursor : entity.start])
            parts.append(f"[REDACTED_{entity.type}]")
            cursor = entity.end
        parts.append(text[cursor:])
        return "".join(parts)
