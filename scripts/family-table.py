#!/usr/bin/env python3
"""Prints the accuracy per family and level of `azr-trainer eval` reports as a Markdown table.

Usage: scripts/family-table.py NAME=REPORT.json [NAME=REPORT.json ...]

Each report is the JSON `eval` prints for program records of `azr-trainer families` (its
`by_cell` scores); every column is one report, every row one family cell, with the correct
answers, the accuracy and its 95 % Wilson interval, for deduction (code_o) and abduction
(code_i).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROLES = (("code_o", "deduction"), ("code_i", "abduction"))


def cell_text(score: dict[str, Any] | None) -> str:
    if not score:
        return "–"
    low, high = score["accuracy_ci"]
    return (
        f"{score['correct']}/{score['answers']} = {100 * score['accuracy']:.0f} % "
        f"[{100 * low:.0f}, {100 * high:.0f}]"
    )


def main(arguments: list[str]) -> int:
    if not arguments or any("=" not in a for a in arguments):
        print(__doc__, file=sys.stderr)
        return 2
    reports: list[tuple[str, dict[str, Any]]] = []
    for argument in arguments:
        name, path = argument.split("=", 1)
        reports.append((name, json.loads(Path(path).read_text())))
    for code, role in ROLES:
        cells = sorted(
            {cell for _, r in reports for cell in r["scores"].get(code, {}).get("by_cell", {})},
            key=lambda c: (c.split("/")[0], int(c.split("/")[1])),
        )
        if not cells:
            continue
        print(f"\n{role} ({code})\n")
        print("| family/level | " + " | ".join(name for name, _ in reports) + " |")
        print("|---|" + "---|" * len(reports))
        for cell in cells:
            row = [cell_text(r["scores"][code].get("by_cell", {}).get(cell)) for _, r in reports]
            print(f"| {cell} | " + " | ".join(row) + " |")
        totals = []
        for _, r in reports:
            s = r["scores"][code]
            low, high = s["accuracy_ci"]
            totals.append(
                f"{s['correct']}/{s['answers']} = {100 * s['accuracy']:.1f} % "
                f"[{100 * low:.1f}, {100 * high:.1f}]"
            )
        print("| **all** | " + " | ".join(totals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
