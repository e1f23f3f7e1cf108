"""Runs under the oracle venv: :mod:`taskqueue_scenario` with App Engine's client over /rpc_http.

stdin: {"api_host": "127.0.0.1", "api_port": port}
stdout: {"observations": [[label, value], ...]}

``google.appengine.api.taskqueue`` sends every call through the SDK's ``DefaultApiStub``, as an
app on App Engine does: ``POST http://$API_HOST:$API_PORT/rpc_http`` with a
``remote_api_bytes_pb2.Request`` carrying the API ticket of the "current request". Outside a
request the ticket comes from ``HTTP_X_APPENGINE_API_TICKET`` in the environment, once the
thread is told to use it (``DefaultApiStub.SetUseRequestSecurityTicketForThread``). The
``*_async`` calls run in the stub's thread pool, but the ticket is read in the calling thread.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# tests/oracle is the script's directory, so first on sys.path
import taskqueue_scenario
from google.appengine.api import apiproxy_stub_map, taskqueue
from google.appengine.runtime import default_api_stub

# The client warns on every task that HTTP_HOST is unset.
logging.disable(logging.WARNING)

TICKET = "pushd-oracle-ticket"


def main():
    request = json.load(sys.stdin)
    os.environ["API_HOST"] = request["api_host"]
    os.environ["API_PORT"] = str(request["api_port"])
    os.environ["APPLICATION_ID"] = "pushd-oracle"
    # As taskqueue_stub_oracle.py: only matters for targets with DEFAULT_VERSION_HOSTNAME set,
    # which neither sets; there it keeps the client from asking the modules API for hosts.
    os.environ["SERVER_SOFTWARE"] = "Development/1.0 (testbed)"
    os.environ[default_api_stub.TICKET_HEADER] = TICKET
    default_api_stub.DefaultApiStub.SetUseRequestSecurityTicketForThread(True)
    apiproxy_stub_map.apiproxy = apiproxy_stub_map.APIProxyStubMap()
    default_api_stub.Register(default_api_stub.DefaultApiStub())
    observations = taskqueue_scenario.run(taskqueue)
    json.dump({"observations": observations}, sys.stdout)


main()
