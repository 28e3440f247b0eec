"""Find an app from an import string, `package.module:attribute`, the way uvicorn and celery do."""

from __future__ import annotations

import importlib
import os
import sys

from conveyor.app import Conveyor
from conveyor.errors import ConfigurationError


def load_app(import_string: str) -> Conveyor:
    module_name, _, attribute = import_string.partition(":")
    if not module_name:
        raise ConfigurationError(f"{import_string!r} is not an import string; write module.path:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, find modules in the working directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(f"cannot import module {module_name!r} from {import_string!r}: "
                                     f"no module named {exc.name!r}; check the spelling and that it is on "
                                     "PYTHONPATH (or run from the directory that holds it)") from None
        raise
    names = [attribute] if attribute else ["app", "conveyor"]
    for name in names:
        app = getattr(module, name, None)
        if isinstance(app, Conveyor):
            app.import_path = f"{module_name}:{name}"
            return app
    if attribute and hasattr(module, attribute):
        raise ConfigurationError(f"{import_string!r} is a {type(getattr(module, attribute)).__name__}, "
                                 "not a Conveyor app")
    raise ConfigurationError(f"module {module_name!r} has no Conveyor app named {' or '.join(names)!r}; "
                             f"write {module_name}:<name of your Conveyor()>")
