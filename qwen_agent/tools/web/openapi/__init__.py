"""OpenAPI 3 operations as typed tools: ``tools_from_openapi(spec, base_url=..., auth=..., policy=...)``.

Each operation becomes one tool whose arguments are the operation's path, query and header parameters and its
JSON body's properties. Arguments are checked against the spec before any request; calls go through the same
address guard as web_fetch; credentials come from ``OpenAPIAuth`` (never from the model) and reach the base URL's
origin only. Modules: ``spec`` (reading the document), ``arguments`` (checks), ``credentials``, ``tool``.
"""

from qwen_agent.tools.web.openapi.credentials import OpenAPIAuth
from qwen_agent.tools.web.openapi.errors import OpenAPIError
from qwen_agent.tools.web.openapi.spec import load_spec
from qwen_agent.tools.web.openapi.tool import OpenAPITool, response_to_output, tools_from_openapi

__all__ = ["OpenAPIAuth", "OpenAPIError", "OpenAPITool", "load_spec", "response_to_output", "tools_from_openapi"]
