"""web_fetch: fetch a URL and return readable text (HTML main content, pretty JSON, plain text), title and final URL.

Every connection, including each redirect hop, goes through ``GuardedTransport`` (SSRF policy checked after DNS,
connection pinned to the checked address). Size, time, redirect and content-type limits keep one page from eating
the model's context or the agent's time budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from qwen_agent.tools.base import Tool, ToolOutput
from qwen_agent.tools.errors import ToolError
from qwen_agent.tools.web.ssrf import AddressPolicy, BlockedURLError, Resolver
from qwen_agent.tools.web.transport import GuardedTransport

logger = logging.getLogger(__name__)

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class WebFetchError(ToolError):
    """The page could not be fetched or read (HTTP error, too large, too slow, unsupported content type ...)."""


class WebFetchConfig(BaseModel):
    """Limits and policy of a ``WebFetch`` tool (set by the developer, never by the model)."""

    model_config = ConfigDict(frozen=True)

    policy: AddressPolicy = Field(default_factory=AddressPolicy)
    max_bytes: int = Field(default=2_000_000, gt=0, description="stop reading the body after this many bytes")
    timeout_s: float = Field(default=15.0, gt=0, description="whole fetch, all redirects included")
    max_redirects: int = Field(default=5, ge=0)
    max_chars: int = Field(default=6000, gt=0, description="budget of the returned text")
    content_types: tuple[str, ...] = Field(
        default=("text/", "application/json", "application/xhtml+xml", "application/xml", "+json", "+xml"),
        description="accepted Content-Type prefixes (or suffixes starting with '+')",
    )
    user_agent: str = "qwen-agent-web-fetch/0.1"


class FetchArgs(BaseModel):
    url: str = Field(description="the http(s) URL of the page to read")


class FetchedPage(BaseModel):
    """What a fetch produced (``ToolOutput.data``); ``text`` is already cut to the budget."""

    url: str
    final_url: str
    status: int
    content_type: str
    title: str | None = None
    text: str
    truncated: bool = False


class WebFetch(Tool):
    """Fetch a web page or API URL and return its readable text."""

    name = "web_fetch"
    description = "Fetch a web page (http or https URL) and return its title and main text."
    Args = FetchArgs

    def __init__(
        self,
        config: WebFetchConfig | None = None,
        *,
        resolver: Resolver | None = None,
        inner_transport: httpx.AsyncBaseTransport | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config or WebFetchConfig()
        super().__init__(name=name, timeout=self.config.timeout_s + 5.0, max_output_chars=None)
        self._resolver = resolver
        self._inner = inner_transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        """One client per tool: connections are pooled across calls (a new client per call would set up TCP and TLS
        every time)."""
        if self._client is None:
            cfg = self.config
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(cfg.policy, resolver=self._resolver, inner=self._inner),
                follow_redirects=True,
                max_redirects=cfg.max_redirects,
                timeout=httpx.Timeout(cfg.timeout_s),
                trust_env=False,  # an environment proxy would connect on our behalf and bypass the address check
                headers={"User-Agent": cfg.user_agent},
            )
        return self._client

    async def run(self, args: FetchArgs) -> ToolOutput:
        page = await self.fetch(args.url)
        header = f"Title: {page.title}\n" if page.title else ""
        header += f"URL: {page.final_url}\n"
        if page.status >= 400:
            header += f"HTTP status: {page.status}\n"
        return ToolOutput(text=header + "\n" + page.text, data=page.model_dump(), is_error=page.status >= 400)

    async def fetch(self, url: str) -> FetchedPage:
        """Fetch and convert one URL (raises ``BlockedURLError`` / ``WebFetchError``)."""
        cfg = self.config
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise WebFetchError(f"{url!r} is not a valid URL: {exc}") from exc
        cfg.policy.check_scheme(url, parsed.scheme)
        try:
            async with asyncio.timeout(cfg.timeout_s):
                async with self._http().stream("GET", parsed) as response:
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if not self._accepted(content_type):
                        raise WebFetchError(
                            f"{response.url} has content type {content_type or 'unknown'!r}, which web_fetch does "
                            "not read (it reads HTML, text and JSON)."
                        )
                    body, cut = await _read_limited(response, cfg.max_bytes)
                    final_url, status = str(response.url), response.status_code
                    encoding = response.encoding or "utf-8"
        except TimeoutError as exc:
            raise WebFetchError(f"Fetching {url} took longer than {cfg.timeout_s:g} s; try another page.") from exc
        except httpx.TooManyRedirects as exc:
            raise WebFetchError(f"{url} redirected more than {cfg.max_redirects} times; giving up.") from exc
        except httpx.TimeoutException as exc:
            raise WebFetchError(f"Fetching {url} timed out ({type(exc).__name__}).") from exc
        except httpx.UnsupportedProtocol as exc:
            raise BlockedURLError(f"Refused {url!r}: only http and https URLs can be fetched.") from exc
        except httpx.HTTPError as exc:
            raise WebFetchError(f"Could not fetch {url}: {exc}") from exc
        text = body.decode(encoding, errors="replace")
        title, readable = _to_readable(text, content_type, final_url)
        truncated = cut or len(readable) > cfg.max_chars
        if len(readable) > cfg.max_chars:
            readable = readable[: cfg.max_chars] + f"\n... [cut at {cfg.max_chars:,} characters]"
        elif cut:
            readable += f"\n... [page cut at {cfg.max_bytes:,} bytes]"
        return FetchedPage(url=url, final_url=final_url, status=status, content_type=content_type, title=title,
                           text=readable, truncated=truncated)

    def _accepted(self, content_type: str) -> bool:
        if not content_type:
            return True  # many small servers send none; the body is still checked for binary below
        for pattern in self.config.content_types:
            if pattern.startswith("+") and content_type.endswith(pattern):
                return True
            if content_type.startswith(pattern):
                return True
        return False

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _read_limited(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body up to ``max_bytes`` and whether it was cut; the rest is never downloaded."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False


def _to_readable(text: str, content_type: str, url: str) -> tuple[str | None, str]:
    """(title, readable text) for HTML (trafilatura main content), JSON (pretty) or anything textual (as is)."""
    if "html" in content_type or (not content_type and text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))):
        return _html_to_text(text, url)
    if "json" in content_type:
        try:
            return None, json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return None, text
    if "\x00" in text:
        raise WebFetchError(f"{url} returned binary data, which web_fetch cannot read.")
    return None, text


def _html_to_text(html: str, url: str) -> tuple[str | None, str]:
    import trafilatura  # imported lazily: it is slow to import and only HTML needs it

    doc: Any = trafilatura.bare_extraction(html, url=url, include_comments=False, include_tables=True,
                                           with_metadata=True, output_format="python")
    title = None
    text = ""
    if doc is not None:
        data = doc if isinstance(doc, dict) else doc.as_dict()
        title = data.get("title")
        text = data.get("text") or ""
    if title is None:
        match = _TITLE_RE.search(html)
        title = re.sub(r"\s+", " ", match.group(1)).strip() if match else None
    if not text.strip():  # tiny pages: trafilatura finds no "main content"; fall back to all visible text
        text = trafilatura.html2txt(html) or ""
    return title, text.strip()


def make_web_fetch(**kwargs: Any) -> WebFetch:
    """Factory for the built-in registry: ``get_builtin("web_fetch", allow_networks=[...], max_chars=...)``."""
    policy_keys = {"allow_networks", "allow_hosts"}
    policy = AddressPolicy(**{k: tuple(v) for k, v in kwargs.items() if k in policy_keys})
    rest = {k: v for k, v in kwargs.items() if k not in policy_keys}
    return WebFetch(WebFetchConfig(policy=policy, **rest))


__all__ = ["FetchArgs", "FetchedPage", "WebFetch", "WebFetchConfig", "WebFetchError", "make_web_fetch"]
