"""Web tools: web_fetch (SSRF-guarded), OpenAPI operations as tools, and the address policy they share.

The tools are imported on first use (``from qwen_agent.tools.web import WebFetch``), so ``import qwen_agent.tools.web``
stays cheap.
"""

from qwen_agent._lazy import TYPE_CHECKING, lazy_exports
from qwen_agent.tools.web.ssrf import LOOPBACK_ONLY, AddressPolicy, BlockedURLError, StaticResolver

__all__ = [
    "LOOPBACK_ONLY",
    "AddressPolicy",
    "BlockedURLError",
    "OpenAPIAuth",
    "StaticResolver",
    "WebFetch",
    "WebFetchConfig",
    "tools_from_openapi",
]

_EXPORTS = {
    "WebFetch": "qwen_agent.tools.web.fetch",
    "WebFetchConfig": "qwen_agent.tools.web.fetch",
    "OpenAPIAuth": "qwen_agent.tools.web.openapi",
    "tools_from_openapi": "qwen_agent.tools.web.openapi",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from qwen_agent.tools.web.fetch import WebFetch, WebFetchConfig
    from qwen_agent.tools.web.openapi import OpenAPIAuth, tools_from_openapi
