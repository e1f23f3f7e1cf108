"""App Engine's verdict on queue.yaml texts; runs under the oracle venv, never under pushd's.

stdin:  {"files": [{"id": "...", "text": "..."}, ...]}
stdout: {"results": {"<id>": {"ok": bool, "error": str, "config": {...} | null}}}

A file is accepted when ``queueinfo.LoadSingleQueue`` succeeds and, for every queue,
``TranslateRetryParameters`` and ``ParseRate`` succeed, and ``ParseTotalStorageLimit`` succeeds:
what the SDK's own taskqueue stub does with a queue.yaml. ``config`` holds the values the stub
would use: rate in tasks per second, bucket_size with the stub's default of 5 for 0 or absent,
retry parameters as the fields set on the TaskQueueRetryParameters proto.
"""

from __future__ import annotations

import json
import sys
import warnings

from google.appengine.api import queueinfo

RETRY_FIELDS = (
    "retry_limit",
    "age_limit_sec",
    "min_backoff_sec",
    "max_backoff_sec",
    "max_doublings",
)
DEFAULT_BUCKET_SIZE = 5  # taskqueue_stub.DEFAULT_BUCKET_SIZE, used when bucket_size is falsy


def queue_values(entry):
    retry = None
    if entry.retry_parameters is not None:
        params = queueinfo.TranslateRetryParameters(entry.retry_parameters)
        retry = {f: getattr(params, f) for f in RETRY_FIELDS if params.HasField(f)}
    rate = None if entry.rate is None else queueinfo.ParseRate(entry.rate)
    return {
        "name": entry.name,
        "mode": entry.mode or "push",
        "rate": rate,
        "bucket_size": int(entry.bucket_size or DEFAULT_BUCKET_SIZE),
        "max_concurrent_requests": (
            None if entry.max_concurrent_requests is None else int(entry.max_concurrent_requests)
        ),
        "target": entry.target,
        "retry": retry or {},
        "acl": [[a.user_email, a.writer_email] for a in entry.acl or []],
    }


def verdict(text):
    try:
        info = queueinfo.LoadSingleQueue(text)
        queues = [queue_values(entry) for entry in info.queue or []]
        limit = info.total_storage_limit
        config = {
            "queues": queues,
            "total_storage_limit": None
            if limit is None
            else queueinfo.ParseTotalStorageLimit(limit),
            "resume_paused_queues": (
                None if info.resume_paused_queues is None else info.resume_paused_queues == "True"
            ),
        }
    except Exception as exc:  # any exception is App Engine refusing the file
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500], "config": None}
    return {"ok": True, "error": "", "config": config}


def main():
    warnings.simplefilter("ignore")  # ruamel.yaml warns about YAML 1.1 floats such as 1e3
    files = json.load(sys.stdin)["files"]
    results = {f["id"]: verdict(f["text"]) for f in files}
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
