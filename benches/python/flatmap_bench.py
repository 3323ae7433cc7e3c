"""The Python library's flatmap_jsonl_file on a given source: prints source rows per second.

Run by benches/flatmap.rs (python3 benches/python/flatmap_bench.py SRC DST LOG); needs
`pip install abstractions==0.9.0`.
"""

import asyncio
import sys
import time
from pathlib import Path

from abstractions.storage import flatmap_jsonl_file


async def f(row):
    return [{"id": row["id"], "k": 0}, {"id": row["id"], "k": 1}]


async def main(src, dst, log):
    for path in (dst, log):
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    await flatmap_jsonl_file(src, dst, log, f, num_concurrent=16, on_error="raise")
    elapsed = time.perf_counter() - start
    rows = sum(1 for _ in src.open())
    print(f"rows {rows} seconds {elapsed:.3f}")


if __name__ == "__main__":
    asyncio.run(main(*(Path(arg) for arg in sys.argv[1:4])))
