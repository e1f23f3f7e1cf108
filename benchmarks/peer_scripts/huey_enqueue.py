"""Enqueue N ``post_webhook`` tasks into SqliteHuey while no consumer runs.

``huey_enqueue.py URL N``: task i POSTs 32 bytes to ``URL/<i>``; single enqueues from one
process, timed; prints ``RESULT {json}``.
"""

from __future__ import annotations

import json
import sys
import time

from huey_tasks import huey, post_webhook

BODY = b"x" * 32


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    t0 = time.perf_counter()
    for i in range(n):
        post_webhook(f"{url}/{i}", BODY)
    elapsed = time.perf_counter() - t0
    print("RESULT " + json.dumps({"n": n, "enqueue_s": elapsed, "pending": huey.pending_count()}))


if __name__ == "__main__":
    main()
