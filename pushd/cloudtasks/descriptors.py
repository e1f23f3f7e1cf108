"""The Cloud Tasks protos, loaded from a committed FileDescriptorSet into a private pool.

``cloudtasks.fds`` is googleapis' ``google/cloud/tasks/{v2,v2beta3,v2beta2}/cloudtasks.proto`` and
``google/cloud/location/locations.proto`` with every import (``google/api``, ``google/rpc``,
``google/iam/v1``, ``google/type``, ``google/longrunning``), compiled by ``make proto`` from
``third_party/googleapis`` (tests/unit/test_cloudtasks_descriptors.py checks it is fresh).

Why a private pool rather than protoc's ``_pb2`` modules: those register
``google.cloud.tasks.v2.*`` in protobuf's default pool, and so does Google's own
``google-cloud-tasks`` client; both in one process fail with "duplicate symbol". A private pool
never meets the default one, so the official client can run beside the daemon's code (the
tests do) and pushd needs no Google package at run time: message classes, services and the
``google.api.http`` REST rules all come from the descriptors.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

FDS_PATH = Path(__file__).with_name("cloudtasks.fds")
#: The API versions served, each a package ``google.cloud.tasks.<version>``.
VERSIONS = ("v2", "v2beta3", "v2beta2")
LOCATIONS_SERVICE = "google.cloud.location.Locations"
_HTTP_VERBS = ("get", "put", "post", "delete", "patch")
_FIRST_VARIABLE = re.compile(r"\{([a-z_.]+)")


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRule:
    """One ``google.api.http`` binding: ``verb`` (GET...), a path ``template`` such as
    ``/v2/{name=projects/*/locations/*/queues/*}:pause``, and where the body goes (``*``: the
    whole request, a field name: that field, ``""``: no body)."""

    verb: str
    template: str
    body: str


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its gRPC path, message classes and REST bindings."""

    service: str  # full service name, e.g. google.cloud.tasks.v2.CloudTasks
    name: str
    request: type[message.Message]
    response: type[message.Message]
    http: tuple[HttpRule, ...]

    @property
    def path(self) -> str:
        """The gRPC method path, ``/<service>/<name>``."""
        return f"/{self.service}/{self.name}"

    @property
    def resource(self) -> str | None:
        """The request field naming the resource the call acts on (``parent``, ``name``,
        ``queue.name``, ``resource``): the first variable of its REST path."""
        match = _FIRST_VARIABLE.search(self.http[0].template) if self.http else None
        return None if match is None else match.group(1)


@functools.cache
def pool() -> descriptor_pool.DescriptorPool:
    """The private pool holding every file of ``cloudtasks.fds`` (built once)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(FDS_PATH.read_bytes())
    private = descriptor_pool.DescriptorPool()
    for file in files.file:
        private.Add(file)
    return private


def message_class(full_name: str) -> type[message.Message]:
    """The message class of ``full_name`` (``google.cloud.tasks.v2.Task``) in the private pool."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


def enum_type(full_name: str) -> descriptor.EnumDescriptor:
    return pool().FindEnumTypeByName(full_name)


@functools.cache
def _http_extension() -> tuple[type[message.Message], descriptor.FieldDescriptor]:
    """The private pool's ``MethodOptions`` class and its ``google.api.http`` extension: the
    options are read again through them, so the rule is found whatever Google packages the
    default pool happens to hold."""
    options = message_class("google.protobuf.MethodOptions")
    return options, pool().FindExtensionByName("google.api.http")


def http_rules(method: descriptor.MethodDescriptor) -> tuple[HttpRule, ...]:
    """The REST bindings of ``method`` (its rule and any additional bindings)."""
    options_class, extension = _http_extension()
    options = options_class.FromString(method.GetOptions().SerializeToString())
    if not options.HasExtension(extension):  # type: ignore[arg-type]
        return ()
    rule: Any = options.Extensions[extension]  # type: ignore[index]
    return tuple(_binding(r) for r in (rule, *rule.additional_bindings))


def _binding(rule: message.Message) -> HttpRule:
    pattern = rule.WhichOneof("pattern")
    if pattern in _HTTP_VERBS:
        return HttpRule(pattern.upper(), getattr(rule, pattern), rule.body)  # type: ignore[attr-defined]
    custom = rule.custom  # type: ignore[attr-defined]
    return HttpRule(custom.kind.upper(), custom.path, rule.body)  # type: ignore[attr-defined]


@functools.cache
def methods(version: str) -> dict[str, Method]:
    """Every RPC of ``google.cloud.tasks.<version>.CloudTasks`` by name, plus the Locations
    mixin (``ListLocations``, ``GetLocation``) with the REST paths the service config binds it
    to under the version (``/v2/{name=projects/*}/locations``...), not the mixin's own ``/v1``."""
    service = pool().FindServiceByName(f"google.cloud.tasks.{version}.CloudTasks")
    found = {m.name: _method(service.full_name, m, http_rules(m)) for m in service.methods}
    locations = pool().FindServiceByName(LOCATIONS_SERVICE)
    mixin = {
        "ListLocations": HttpRule("GET", f"/{version}/{{name=projects/*}}/locations", ""),
        "GetLocation": HttpRule("GET", f"/{version}/{{name=projects/*/locations/*}}", ""),
    }
    for m in locations.methods:
        if m.name in mixin:
            found[m.name] = _method(locations.full_name, m, (mixin[m.name],))
    return found


def _method(
    service: str, method: descriptor.MethodDescriptor, http: tuple[HttpRule, ...]
) -> Method:
    return Method(
        service=service,
        name=method.name,
        request=message_factory.GetMessageClass(method.input_type),
        response=message_factory.GetMessageClass(method.output_type),
        http=http,
    )


def new(full_name: str) -> Any:
    """A fresh ``full_name`` message (typed Any: the classes are built at run time)."""
    return message_class(full_name)()
