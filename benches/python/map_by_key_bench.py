"""The Python library's map_by_key_jsonl_file on a given source: prints source rows per second.

Run by benches/map_by_key.rs (python3 benches/python/map_by_key_bench.py SRC DST); needs
`pip install abstractions==0.9.0`. The same instant `f` and columns as the Rust bench.
"""

import asyncio
import sys
import time
from pathlib import Path

from abstractions.storage import map_by_key_jsonl_file


async def f(row):
    key = row["key"]
    return {"segment": f"segment of {key}", "key_len": len(key), "score2": row["score"]}


async def main(src, dst):
    dst.unlink(missing_ok=True)
    start = time.perf_counter()
    await map_by_key_jsonl_file(
        src, dst, f, key="key", num_concurrent=16, keep_columns=["id", "text"], on_error="raise"
    )
    elapsed = time.perf_counter() - start
    rows = sum(1 for _ in src.open())
    print(f"rows {rows} seconds {elapsed:.3f}")


if __name__ == "__main__":
    asyncio.run(main(*(Path(arg) for arg in sys.argv[1:3])))
