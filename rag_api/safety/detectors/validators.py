"""Checksums and issuing rules that tell real identifiers from look-alike digit runs."""

from __future__ import annotations

import ipaddress
import re

# ISO 13616 IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Networks reserved for documentation and examples (RFC 5737, RFC 3849): they name nobody's machine.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# Domains reserved for examples (RFC 2606, RFC 6761): no person's mailbox lives there.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = ("example", "test", "invalid", "localhost")
# Placeholder domains that documentation writes for "your own address" (support@yourcompany.com).
PLACEHOLDER_DOMAIN = re.compile(r"^(?:(?:your|my)[a-z-]*|example|sample|domain|company)\.[a-z]{2,}$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand_known(digits: str) -> bool:
    """Issuer prefixes and lengths of the major networks (Visa, Mastercard, Amex, Discover, JCB, Diners,
    UnionPay, Maestro)."""
    n = len(digits)
    two, three, four = int(digits[:2]), int(digits[:3]), int(digits[:4])
    six = int(digits[:6]) if n >= 6 else 0
    return (
        (digits[0] == "4" and n in (13, 16, 19))
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and n == 16)
        or (two in (34, 37) and n == 15)
        or ((four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925) and 16 <= n <= 19)
        or (3528 <= four <= 3589 and 16 <= n <= 19)
        or (four in (2131, 1800) and n == 15)  # JCB's 15-digit ranges
        or ((300 <= three <= 305 or two in (36, 38, 39) or four == 3095) and 14 <= n <= 19)
        or (two == 62 and 16 <= n <= 19)
        or (two in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19)
    )


def iban_valid(compact: str) -> bool:
    """ISO 7064 mod-97-10 over the rearranged IBAN, with the country's registered length."""
    country = compact[:2]
    if IBAN_LENGTHS.get(country) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ip_kind(candidate: str) -> str | None:
    """ "public"/"private"/"documentation"/"local" for a valid address, None when it is not one."""
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if any(address in net for net in DOCUMENTATION_NETWORKS if net.version == address.version):
        return "documentation"
    if address.is_loopback or address.is_unspecified:  # 127.0.0.1, ::1, 0.0.0.0: every machine's own
        return "local"
    return "private" if address.is_private else "public"


def reserved_email_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    if domain.rsplit(".", 1)[-1] in RESERVED_TLDS:
        return True
    if PLACEHOLDER_DOMAIN.match(domain):
        return True
    return any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS)
