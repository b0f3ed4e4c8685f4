"""A hostile input corpus: valid events mixed with every kind of garbage a pipeline meets.

`corpus(n)` gives n JSON lines (bytes, no newline), cycling through `KINDS` in a shuffled
order: valid univariate and multivariate events, values at the edges of what is accepted,
floods of distinct stream ids and feature sets, and lines that must be rejected (poison
pills, lone surrogates, huge and non-finite numbers, malformed JSON, invalid UTF-8, wrong
types, bad or backwards timestamps, feature-set changes, oversized lines). Empty lines
are left out: the filter counts them in its summary instead of answering each.

`answers(...)` checks what came back: exactly one result or error record per line.
Used by tests/test_hostile.py (small corpora) and bench/hostile.py (the figures).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable

HUGE_INT = b"1" * 4301  # beyond int()'s default 4,300-digit limit
MAX_LINE_BYTES = 8192  # the corpus' configs set input.max_line_bytes to this


def _valid(rng: random.Random, n: int) -> bytes:
    s = rng.randrange(8)
    value = math.sin(n / 20 + s) + rng.gauss(0, 0.05)
    return json.dumps({"stream": f"host-{s}", "ts": 1_700_000_000 + n, "value": value}).encode()


def _multi(rng: random.Random, n: int) -> bytes:
    values = {"cpu": math.cos(n / 15), "mem": None if n % 13 == 0 else rng.random(), "disk": 0.5}
    return json.dumps({"stream": f"db-{n % 3}", "values": values}).encode()


# kind -> (what it must get: "result" or "error", line maker)
KINDS: dict[str, tuple[str, Callable[[random.Random, int], bytes]]] = {
    "valid": ("result", _valid),
    "valid_multivariate": ("result", _multi),
    "valid_extreme": ("result", lambda r, n: json.dumps(
        {"stream": "edge", "value": r.choice([1e18, -1e18, 1e-300, -1e-300, 0.0, 5e17, 2.2e-308])}).encode()),
    "valid_bom": ("result", lambda r, n: b"\xef\xbb\xbf" + json.dumps({"stream": "bom", "value": n % 5}).encode()),
    "valid_huge_int_unused": ("result", lambda r, n: b'{"stream":"hi","value":1,"note":' + HUGE_INT + b"}"),
    "valid_control_chars": ("result", lambda r, n: b'{"stream":"nul\\u0000tab\\t","value":2}'),
    "flood_ids": ("result", lambda r, n: json.dumps({"stream": f"flood-{n}", "value": 1.0}).encode()),
    "flood_feature_sets": ("result", lambda r, n: json.dumps({"stream": f"fs-{n}", "values": {f"k{n}": 1.0}}).encode()),
    "huge_int_value": ("error", lambda r, n: b'{"stream":"a","value":' + HUGE_INT + b"}"),
    "huge_int_ts": ("error", lambda r, n: b'{"stream":"a","value":1,"ts":' + HUGE_INT + b"}"),
    "surrogate_stream": ("error", lambda r, n: b'{"stream":"\\ud800x","value":1}'),
    "surrogate_feature": ("error", lambda r, n: b'{"stream":"s","values":{"\\udfff":1}}'),
    "out_of_range": ("error", lambda r, n: json.dumps({"stream": "a", "value": r.choice([1e38, -1e300, 3e18])}).encode()),
    "non_finite": ("error", lambda r, n: r.choice([b'{"value":NaN}', b'{"value":-Infinity}', b'{"value":1e999}'])),
    "malformed_json": ("error", lambda r, n: r.choice([b'{"stream":"a","value":', b"not json", b"{]", b'{"a":1}}'])),
    "deep_nesting": ("error", lambda r, n: b"[" * 3000 + b"]" * 3000),
    "invalid_utf8": ("error", lambda r, n: b'{"stream":"\xff\xfe","value":1}'),
    "wrong_type": ("error", lambda r, n: r.choice([b"123", b'"text"', b"null", b'{"value":true}', b'{"value":[1]}',
                                                   b'{"stream":5,"value":1}', b'{"values":[]}', b'{"values":{}}'])),
    "missing_field": ("error", lambda r, n: r.choice([b'{"stream":"a"}', b'{"value":null}'])),
    "not_numeric": ("error", lambda r, n: b'{"stream":"a","value":"high"}'),
    "bad_timestamp": ("error", lambda r, n: r.choice([b'{"stream":"a","value":1,"ts":"yesterday"}',
                                                      b'{"stream":"a","value":1,"ts":true}'])),
    "ts_backwards": ("error", lambda r, n: json.dumps({"stream": "host-0", "ts": 1_000, "value": 1}).encode()),
    "feature_set_changed": ("error", lambda r, n: json.dumps({"stream": "host-1", "values": {"x": 1}}).encode()),
    "oversized_line": ("error", lambda r, n: b'{"stream":"a","value":1,"pad":"' + b"x" * MAX_LINE_BYTES + b'"}'),
}


def corpus(n: int, seed: int = 0, kinds: Iterable[str] = KINDS) -> list[tuple[str, bytes]]:
    """n (kind, line) pairs, every kind at least once when n >= len(kinds), in random order
    (ts_backwards and feature_set_changed target streams the valid lines use)."""
    rng = random.Random(seed)
    kinds = list(kinds)
    order = [kinds[i % len(kinds)] for i in range(n)]
    rng.shuffle(order)
    head = [("valid", json.dumps({"stream": f"host-{k}", "ts": 1_699_999_990, "value": 0.0}).encode())
            for k in range(8)]  # the streams ts_backwards and feature_set_changed target exist
    return head + [(kind, KINDS[kind][1](rng, i)) for i, kind in enumerate(order[: n - len(head)])]


def answers(lines: list[tuple[str, bytes]], outputs: Iterable[dict], errors: Iterable[dict],
            seq_of: Callable[[dict], object] = lambda rec: rec["seq"]) -> dict[str, int]:
    """Count what came back for `lines` (the i-th line has seq i + 1 unless `seq_of` maps
    records to line indices otherwise): lines answered exactly once, unanswered, answered
    more than once, results for lines that must be rejected (and the reverse), and scores
    that are not finite numbers."""
    got: Counter = Counter()
    bad_scores = 0
    result_seqs, error_seqs = set(), set()
    for rec in outputs:
        got[seq_of(rec)] += 1
        result_seqs.add(seq_of(rec))
        if not (isinstance(rec["score"], float) and math.isfinite(rec["score"]) and 0.0 <= rec["score"] < 1.0):
            bad_scores += 1
    for rec in errors:
        got[seq_of(rec)] += 1
        error_seqs.add(seq_of(rec))
    seqs = range(1, len(lines) + 1)
    wrong = sum(1 for seq, (kind, _) in zip(seqs, lines)
                if (seq in result_seqs) != (KINDS[kind][0] == "result") and kind not in FLOOD_KINDS)
    return {"lines": len(lines), "answered_once": sum(1 for s in seqs if got[s] == 1),
            "unanswered": sum(1 for s in seqs if got[s] == 0), "answered_twice": sum(1 for s in seqs if got[s] > 1),
            "wrong_answer": wrong, "non_finite_scores": bad_scores,
            "results": len(result_seqs), "errors": len(error_seqs)}


# Flood lines are valid, but may be rejected as too_many_models once the model cap is reached.
FLOOD_KINDS = {"flood_feature_sets"}
