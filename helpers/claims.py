"""Checked claims: every sentence a notebook states about its outputs is computed and printed.

A notebook cell ends with ``check("the claim, as the text says it", condition)``; the line it prints
(``✔ claim`` or ``✘ claim``) is compared by nbval, so a claim that stops being true fails the tests.
"""

from __future__ import annotations

PASS, FAIL = "\u2714", "\u2718"


def check(claim: str, condition, detail: str | None = None) -> bool:
    """Print ``✔ claim`` when ``condition`` holds, else ``✘ claim`` (with ``detail``); return it.

    Args:
        claim: the sentence, as the notebook's text states it.
        condition: anything with a truth value (a numpy bool included).
        detail: optional measured figures, printed after the claim (keep them stable: nbval compares them).
    """
    ok = bool(condition)
    line = f"{PASS if ok else FAIL} {claim}"
    if detail:
        line += f" ({detail})"
    print(line)
    return ok
