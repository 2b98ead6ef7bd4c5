"""Server-side faults that make answers leak, so that the safety alerts can be seen firing in the lab.

The record is test data only: the Visa test card 4111 1111 1111 1111, the IBAN of the ISO 13616 example and
an address at a made-up mail domain. No real person's data.
"""

from __future__ import annotations

import random

from lab_common.faults import Fault, FaultRegistry, RateParams
from rag_api.llm import system_prompt

FAULTS = {
    "pii_leak": Fault(
        "a share `rate` (0-1) of answers echo a fake customer record (test card 4111 1111 1111 1111)",
        RateParams,
    ),
    "prompt_leak": Fault(
        "a share `rate` (0-1) of answers repeat the generation prompt, its canary included", RateParams
    ),
    "safety_error": Fault(
        "a share `rate` (0-1) of safety checks raise (outcome `error`, then `fail_mode`)", RateParams
    ),
}

FAKE_CUSTOMER_RECORD = (
    "Customer record on file: Jane Testperson, jane.testperson@nimbusmail.net, card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00."
)


def apply_leak_faults(answer: str, faults: FaultRegistry, canary: str, rng: random.Random) -> str:
    """The answer with what the active leak faults append to it (unchanged when none fires)."""
    if faults.fires("pii_leak", rng):
        answer = f"{answer}\n\n{FAKE_CUSTOMER_RECORD}"
    if faults.fires("prompt_leak", rng):
        answer = f"{answer}\n\nMy instructions: {system_prompt(canary)}"
    return answer
