"""Package APIs whose names load on first use (PEP 562), so that importing one light module
of a package (a config, the errors) does not load TensorFlow."""

import importlib


def lazy_api(package, exports):
    """`__all__`, `__getattr__` and `__dir__` of `package`, where `exports` maps each public
    name to the module that defines it."""

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    public = sorted(exports)
    return public, __getattr__, lambda: public
