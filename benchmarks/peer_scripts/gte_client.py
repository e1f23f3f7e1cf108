"""The Cloud Tasks client side of the gcloud-tasks-emulator run (google-cloud-tasks 2.23.0).

``enqueue TARGET URL N [--threads T]``: create queue ``bench`` (``projects/dev/locations/here``),
pause it, create N ``http_request`` tasks POSTing 32 bytes to ``URL/<i>`` with single
``create_task`` calls (Cloud Tasks has no batch create): the first half from this thread, the
second half from T threads sharing the client. ``resume TARGET``: resume the queue.
Each prints one ``RESULT {json}`` line with the timings (epoch seconds for instants).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.cloud.tasks_v2 import CloudTasksClient
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

PARENT = "projects/dev/locations/here"
QUEUE = f"{PARENT}/queues/bench"
BODY = b"x" * 32
RPC_TIMEOUT_S = 30.0


def client(target: str) -> CloudTasksClient:
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    return CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def enqueue(target: str, url: str, n: int, threads: int) -> dict[str, object]:
    c = client(target)
    c.create_queue(parent=PARENT, queue={"name": QUEUE}, timeout=RPC_TIMEOUT_S)
    c.pause_queue(name=QUEUE, timeout=RPC_TIMEOUT_S)

    def create(i: int) -> None:
        task = {"http_request": {"http_method": "POST", "url": f"{url}/{i}", "body": BODY}}
        c.create_task(parent=QUEUE, task=task, timeout=RPC_TIMEOUT_S)

    half = n // 2
    t0 = time.perf_counter()
    for i in range(half):
        create(i)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(create, range(half, n)):
            pass
    t2 = time.perf_counter()
    return {
        "seq_n": half,
        "seq_s": t1 - t0,
        "threads": threads,
        "par_n": n - half,
        "par_s": t2 - t1,
    }


def resume(target: str) -> dict[str, object]:
    c = client(target)
    t = time.time()
    c.resume_queue(name=QUEUE, timeout=RPC_TIMEOUT_S)
    return {"t_resume": t, "resumed_after_s": time.time() - t}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enqueue")
    e.add_argument("target")
    e.add_argument("url")
    e.add_argument("n", type=int)
    e.add_argument("--threads", type=int, default=8)
    r = sub.add_parser("resume")
    r.add_argument("target")
    args = parser.parse_args()
    if args.cmd == "enqueue":
        result = enqueue(args.target, args.url, args.n, args.threads)
    else:
        result = resume(args.target)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
