"""Google's Cloud Tasks API (v2, v2beta3, and v2beta2 with pull queues) served on pushd's queues.

One handler table (:mod:`pushd.cloudtasks.service`, proto message in, proto message out,
:class:`~pushd.cloudtasks.rpc.RpcError` out) is served two ways: a ``grpc.aio`` server on its
own port (:mod:`pushd.cloudtasks.grpc_server`, ``cloud_tasks: {grpc_port: N}``) and REST routes
derived from the protos' ``google.api.http`` rules on the API's aiohttp app
(:mod:`pushd.cloudtasks.rest`, under ``/v2/``, ``/v2beta3/`` and ``/v2beta2/``). Messages come
from a private descriptor pool (:mod:`pushd.cloudtasks.descriptors`). Everything the handlers need
from the rest of pushd goes through :mod:`pushd.cloudtasks.backend`, the only module here that
calls pushd's queue and task operations.
"""
