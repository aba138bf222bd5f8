"""Precision and recall of the inbound classifier on the reference texts.

    python bench/keywords.py                       # the gateway's classifier, both tables
    python bench/keywords.py --baseline OLD.py     # and another keywords module beside it

Reads tests/data/revocations.csv (body, expected class, source). Classes: opt_out (all the sender
carries), opt_out_marketing, review, none, help, opt_in. Prints, per classifier, how many texts
fall in the right class and, for revocations (opt_out + opt_out_marketing as one class), the
precision (texts taken as revocations that are) and recall (revocations taken as such), plus
the texts it gets wrong.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT / "tests" / "data" / "revocations.csv"
#: labelled independently of the classifier (by a reviewer who did not read it); some labels
#: are judgement calls the gateway decides otherwise on purpose (see the README)
INDEPENDENT = ROOT / "bench" / "data" / "revocations_independent.csv"


def outcome(module: ModuleType, body: str) -> str:
    result = module.classify(body)
    intent = result.intent.value
    if intent == "opt_out":
        scope = getattr(result, "scope", None)
        marketing = scope is not None and scope.value == "marketing"
        return "opt_out_marketing" if marketing else "opt_out"
    return {"possible_opt_out": "review"}.get(intent, intent)


def report(name: str, module: ModuleType, rows: list[dict[str, str]]) -> None:
    right = 0
    revoking = {"opt_out", "opt_out_marketing"}
    tp = fp = fn = 0
    wrong = []
    for row in rows:
        got = outcome(module, row["body"])
        expected = row["expected"]
        right += got == expected
        if got != expected:
            wrong.append((row["body"], expected, got))
        if got in revoking and expected in revoking:
            tp += 1
        elif got in revoking:
            fp += 1
        elif expected in revoking:
            fn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(
        f"{name}: {right}/{len(rows)} texts in the right class; revocations: "
        f"precision {precision:.3f}, recall {recall:.3f} ({tp} found, {fp} false, {fn} missed)"
    )
    for body, expected, got in wrong:
        print(f"  {body!r}: expected {expected}, got {got}")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_keywords", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another keywords.py to compare")
    parser.add_argument("--file", type=Path, action="append", help="reference CSV files")
    args = parser.parse_args()
    from gateway.core import keywords

    for path in args.file or [REFERENCE, INDEPENDENT]:
        with path.open(encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        print(f"== {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        report("gateway", keywords, rows)
        if args.baseline:
            report(f"baseline {args.baseline.name}", load(args.baseline), rows)


if __name__ == "__main__":
    main()
