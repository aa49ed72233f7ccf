#!/usr/bin/env python3
"""Compares two `azr-trainer eval` reports of the same programs, program by program.

Usage: scripts/paired-test.py BEFORE.json AFTER.json [--verdicts OUT.json]

For each role (deduction code_o, abduction code_i) it prints the accuracy before and after
with 95 % Wilson intervals, the accuracy among answers in the answer layout, and the
programs gained (wrong before, right after) and lost; then an exact McNemar test over both
roles pooled (two-sided binomial test of the discordant pairs). With --verdicts it writes
`{"before": {role: {program id: solved}}, "after": {...}, "summary": {...}}`, from which
anyone can recompute the intervals and the test.

The reports must come from `eval --limit 0` over program records with ids (`azr-trainer
families`), one greedy answer per task: `by_program` maps each id to its correct answers.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ROLES = (("code_o", "deduction"), ("code_i", "abduction"))


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of the discordant pairs at 1/2."""
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def verdicts(report: dict[str, Any], role: str) -> dict[str, bool]:
    by_program = report["scores"].get(role, {}).get("by_program")
    if by_program is None:
        raise SystemExit(f"the report has no by_program for {role}: run eval over family programs")
    return {pid: correct > 0 for pid, correct in by_program.items()}


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--verdicts", type=Path, help="write the per-program verdicts here")
    args = parser.parse_args()
    before = json.loads(args.before.read_text())
    after = json.loads(args.after.read_text())

    out: dict[str, Any] = {"before": {}, "after": {}, "summary": {}}
    pooled_gained = pooled_lost = 0
    print("| role | before | after | in layout before | in layout after | gained | lost |")
    print("|---|---|---|---|---|---|---|")
    for role, name in ROLES:
        if role not in before["scores"] or role not in after["scores"]:
            continue
        b, a = verdicts(before, role), verdicts(after, role)
        if set(b) != set(a):
            raise SystemExit(f"{role}: the two reports scored different programs")
        out["before"][role], out["after"][role] = b, a
        gained = sum(1 for pid in b if not b[pid] and a[pid])
        lost = sum(1 for pid in b if b[pid] and not a[pid])
        pooled_gained += gained
        pooled_lost += lost
        n = len(b)
        cells = []
        for solved in (sum(b.values()), sum(a.values())):
            low, high = wilson(solved, n)
            cells.append(f"{solved}/{n} = {percent(solved / n)} [{percent(low)}, {percent(high)}]")
        for report in (before, after):
            s = report["scores"][role]
            cells.append(
                f"{s.get('correct_in_layout', 0)} of {round(s['format_rate'] * s['answers'])}"
                f" = {percent(s.get('accuracy_in_layout', 0.0))}"
            )
        print(f"| {name} ({role}) | " + " | ".join(cells) + f" | {gained} | {lost} |")
        out["summary"][role] = {
            "programs": n,
            "solved_before": sum(b.values()),
            "solved_after": sum(a.values()),
            "wilson_before": wilson(sum(b.values()), n),
            "wilson_after": wilson(sum(a.values()), n),
            "accuracy_in_layout_before": before["scores"][role].get("accuracy_in_layout"),
            "accuracy_in_layout_after": after["scores"][role].get("accuracy_in_layout"),
            "gained": gained,
            "lost": lost,
        }
    p = mcnemar_exact(pooled_gained, pooled_lost)
    out["summary"]["pooled"] = {"gained": pooled_gained, "lost": pooled_lost, "mcnemar_p": p}
    print(
        f"\nBoth roles pooled: {pooled_gained} programs gained, {pooled_lost} lost; "
        f"exact McNemar p = {p:.3g}"
    )
    if args.verdicts:
        args.verdicts.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
