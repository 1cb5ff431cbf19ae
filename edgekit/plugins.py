"""Load plugins (e.g. decoders registered with :func:`edgekit.register_decoder`) by file or module."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys

from .errors import ConfigError, EdgekitError

__all__ = ["load_plugin"]


def load_plugin(plugin: str) -> None:
    """Import ``plugin``: a Python file (``path/to/x.py``) or an importable module name.

    Raises ConfigError naming the plugin when it cannot be found or its import fails.
    """
    try:
        if plugin.endswith(".py") or os.sep in plugin:
            if not os.path.isfile(plugin):
                raise ConfigError(f"--plugin {plugin}: no such Python file")
            # A private module name: a plugin file called queue.py must not shadow the standard
            # library, and two plugins with the same file name in different folders must not clash.
            path = os.path.realpath(plugin)
            stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
            name = f"edgekit_plugin_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
            if name in sys.modules:
                return  # already loaded (e.g. --plugin given twice)
            spec = importlib.util.spec_from_file_location(name, plugin)
            if spec is None or spec.loader is None:
                raise ConfigError(f"--plugin {plugin}: not a Python file edgekit can import")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look their module up here
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            importlib.import_module(plugin)
    except EdgekitError:
        raise
    except Exception as exc:
        raise ConfigError(f"--plugin {plugin}: import failed ({type(exc).__name__}: {exc})") from None
