"""flechefs: fleche's caches served by flechefs-server, with no Python on the server
and no pickle on the wire (rpc/PROTOCOL.md)."""

__version__ = "0.1.0"

from ._connection import ConnectionLost, ServerError  # noqa: E402
from .cache import FlechefsCache  # noqa: E402

__all__ = ["ConnectionLost", "FlechefsCache", "ServerError", "__version__"]
