"""Loading a 100,000-line known-weak wordlist, as a ratio to just reading the file.

Writes a wordlist shaped like wallarm/jwt-secrets (100,000 lines, 6-40 chars),
then alternates: (a) reading the file's bytes (the floor), (b) a cold
`load_wordlist` (cache cleared), and (c) a cached lookup (`known_weak` on a
word, the cost per poll round). Repeated; prints medians and ratios.

    uv run python bench/wordlist_load.py [--lines 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import tempfile
import time
from pathlib import Path

from collectors.secrets import weak
from collectors.secrets.weak import known_weak, load_wordlist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_!@"
    words = ["".join(rng.choices(alphabet, k=rng.randint(6, 40))) for _ in range(args.lines)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "jwt-secrets.txt"
        path.write_text("\n".join(words) + "\n")
        floor, cold, warm = [], [], []
        probe = words[args.lines // 2]
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            path.read_bytes()
            floor.append(time.perf_counter() - t0)

            weak._cache.clear()
            t0 = time.perf_counter()
            load_wordlist(str(path))
            cold.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            assert known_weak(probe, str(path))
            warm.append(time.perf_counter() - t0)
        f, c, w = (statistics.median(x) * 1000 for x in (floor, cold, warm))
        size = path.stat().st_size / 1e6
        print(f"wordlist: {args.lines} lines, {size:.1f} MB, {args.repeat} repeats (medians)")
        print(f"  read bytes (floor)       {f:8.2f} ms")
        print(f"  load_wordlist, cold      {c:8.2f} ms   ratio to floor {c / f:5.1f}")
        print(f"  known_weak, cached       {w:8.3f} ms   ratio to cold  {w / c:7.4f}")


if __name__ == "__main__":
    main()
