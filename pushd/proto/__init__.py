"""Protocol buffers of App Engine's API protocol, as pushd serves it at ``/rpc_http``.

``*.proto`` are pushd's own definitions of the wire format the App Engine SDK speaks;
``*_pb2.py`` and ``*_pb2.pyi`` are generated from them by ``make proto``. Do not edit those.
"""
