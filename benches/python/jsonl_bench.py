"""The Python library's run_bounded_create_or_resume_jsonl_file on the job of benches/jsonl.rs.

Run by benches/jsonl.rs (python3 benches/python/jsonl_bench.py PATH KEYS PER_KEY); needs
`pip install abstractions==0.9.0`. Writes KEYS * PER_KEY rows from an instant generator at
limit 16, then runs again on the finished file (the resume scan), and prints
"write SECONDS resume SECONDS".
"""

import asyncio
import sys
import time
from pathlib import Path

from abstractions.storage import run_bounded_create_or_resume_jsonl_file

TEXT = "a sentence of generated text, of a usual length"


async def value_generator(pairs):
    for key, count in pairs:
        for index in range(count):

            async def row(key=key, index=index):
                return {"key": key, "index": index, "text": TEXT, "score": 0.5}

            yield row()


async def run(path, keys, per_key):
    start = time.perf_counter()
    await run_bounded_create_or_resume_jsonl_file(
        path,
        "key",
        per_key,
        (f"k{i:06}" for i in range(keys)),
        value_generator,
        limit=16,
        on_error="raise",
    )
    return time.perf_counter() - start


async def main(path, keys, per_key):
    path.unlink(missing_ok=True)
    write = await run(path, keys, per_key)
    resume = await run(path, keys, per_key)
    lines = sum(1 for _ in path.open())
    assert lines == keys * per_key, lines
    print(f"write {write:.3f} resume {resume:.3f}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
