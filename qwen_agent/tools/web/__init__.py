"""Web tools: web_fetch (SSRF-guarded), OpenAPI operations as tools, and the address policy they share.

Submodules are imported lazily by name so ``import qwen_agent.tools.web`` stays cheap.
"""

from qwen_agent.tools.web.ssrf import LOOPBACK_ONLY, AddressPolicy, BlockedURLError, StaticResolver

__all__ = ["LOOPBACK_ONLY", "AddressPolicy", "BlockedURLError", "StaticResolver"]
