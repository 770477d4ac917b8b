"""Generated source as a module in memory (specc.build), without a file: executed under a name
registered with linecache, so its code shows in tracebacks and inspect, and registered in
sys.modules, so its classes pickle by reference in this process. Instances pickle as "the class
of this source, this state" (`rebuild`), so they also load in another process that has specc."""
from __future__ import annotations

import hashlib
import linecache
import sys
import types

_modules: dict[str, types.ModuleType] = {}


def load_source(source: str) -> types.ModuleType:
    """The module that `source` defines (executed once per distinct source)."""
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]
    module = _modules.get(digest)
    if module is not None:
        return module
    name = f"specc_built_{digest}"
    filename = f"<specc build {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    module._specc_source = source
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == name:
            value.__reduce_ex__ = _reduce_ex
    _modules[digest] = module
    return module


def _reduce_ex(self, protocol):
    module = sys.modules[type(self).__module__]
    return (_instance, (module._specc_source, type(self).__qualname__), self.__getstate__())


def _instance(source: str, qualname: str):
    cls = getattr(load_source(source), qualname)
    return cls.__new__(cls)
