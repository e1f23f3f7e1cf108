"""Runs under the oracle venv: the parent class of every exception in the SDK's taskqueue."""

from __future__ import annotations

import json
import sys

from google.appengine.api.taskqueue import taskqueue

parents = {
    name: obj.__mro__[1].__name__
    for name, obj in vars(taskqueue).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == taskqueue.__name__
}
json.dump({"parents": parents}, sys.stdout)
