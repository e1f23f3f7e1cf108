"""queue.yaml: the file format App Engine reads, checked the way App Engine checks it.

- :mod:`~pushd.queue_yaml.reader`: a YAML 1.1 reader that keeps how each scalar was written.
- :mod:`~pushd.queue_yaml.values`: each value (rates, durations, sizes, retry parameters).
- :mod:`~pushd.queue_yaml.config`: the queues (:class:`~pushd.queue_yaml.config.QueuesConfig`).

Nothing here is imported by the client or the store: only the daemon side reads queue.yaml.
"""
