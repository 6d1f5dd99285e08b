"""Precision and recall per item of the extraction over the labelled corpus, plus mismatches.

    .venv/bin/python bench/extraction_report.py [--quiet]

For identity_verified / reset_instructed: precision = true confirmations / all confirmations,
recall = true confirmations / expected confirmations. For account_email / case_reference:
precision = correct values / values given, recall = correct values / expected values. Also:
exact `missing` lists and extraction time per message. Exit status 1 when a confirmation is
ever false (precision below 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from reset_mailbot_testing.corpus import (
    BOOL_ITEMS,
    VALUE_ITEMS,
    Outcome,
    load_cases,
    run_case,
)


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.3f} ({num}/{den})" if den else "n/a (0/0)"


def _bool_scores(outcomes: list[Outcome], item: str) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for o in outcomes:
        if item not in o.case.expected:
            continue
        got, want = bool(getattr(o.request, item)), bool(o.case.expected[item])
        tp += got and want
        fp += got and not want
        fn += want and not got
    return tp, fp, fn


def _value_scores(outcomes: list[Outcome], item: str) -> tuple[int, int, int]:
    correct = given = expected = 0
    for o in outcomes:
        if item not in o.case.expected:
            continue
        got, want = getattr(o.request, item), o.case.expected[item]
        given += got is not None
        expected += want is not None
        correct += got is not None and got == want
    return correct, given, expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="scores only, no mismatch list")
    args = parser.parse_args(argv)
    cases = load_cases()
    if not cases:
        print("no corpus (tests/corpus/expected.json)")
        return 1
    run_case(cases[0])  # warm-up: rule compilation, imports
    outcomes = [run_case(c, repeat=3) for c in cases]
    print(f"corpus: {len(outcomes)} messages")
    print(f"{'item':<19} {'precision':<20} {'recall':<20}")
    precision_ok = True
    for item in BOOL_ITEMS:
        tp, fp, fn = _bool_scores(outcomes, item)
        precision_ok = precision_ok and fp == 0
        print(f"{item:<19} {_ratio(tp, tp + fp):<20} {_ratio(tp, tp + fn):<20}")
    for item in VALUE_ITEMS:
        correct, given, expected = _value_scores(outcomes, item)
        print(f"{item:<19} {_ratio(correct, given):<20} {_ratio(correct, expected):<20}")
    exact_missing = sum(
        1 for o in outcomes if not any(m.startswith("missing:") for m in o.mismatches)
    )
    clean = sum(1 for o in outcomes if not o.mismatches and not o.false_positives)
    print(f"exact missing list: {_ratio(exact_missing, len(outcomes))}")
    print(f"cases fully right:  {_ratio(clean, len(outcomes))}")
    times = sorted(o.seconds for o in outcomes)
    print(
        f"extraction time per message (best of 3): mean {statistics.fmean(times) * 1e3:.3f} ms, "
        f"p50 {times[len(times) // 2] * 1e3:.3f} ms, max {times[-1] * 1e3:.3f} ms"
    )
    xfails = [o for o in outcomes if o.case.xfail_reason]
    if xfails:
        print(f"marked xfail (recall): {len(xfails)}")
    if not args.quiet:
        for o in outcomes:
            problems = o.false_positives + o.mismatches
            if not problems:
                continue
            tag = " [xfail]" if o.case.xfail_reason else ""
            print(f"\n{o.case.file}{tag}: {o.case.description}")
            for problem in o.false_positives:
                print(f"  FALSE POSITIVE {problem}")
            for problem in o.mismatches:
                print(f"  {problem}")
            for ev in o.request.evidence:
                print(f"    evidence {ev.item.value} ({ev.kind}): {ev.text[:110]}")
            details = {k.value: v.value for k, v in o.request.missing_details.items()}
            if details:
                print(f"    details {details}")
    print(f"\nprecision of confirmations = 1.0: {'yes' if precision_ok else 'NO'}")
    return 0 if precision_ok else 1


if __name__ == "__main__":
    sys.exit(main())
