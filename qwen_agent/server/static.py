"""The chat page's files (shipped in the package, no build step, no CDN) and safe responses for session files.

Every page response carries a strict Content-Security-Policy: scripts and styles only from this server, no inline
script, no plugins, images only from here or ``data:``; so even a renderer bug cannot run a model's ``onerror=``.
Session files are served as PNG/JPEG images only when their bytes are one; anything else is a download.
"""

from __future__ import annotations

import functools
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["asset", "file_response", "index"]

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "markdown.js": "text/javascript; charset=utf-8",
    "highlight.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
_PAGE_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                 "referrer-policy": "no-referrer", "x-frame-options": "DENY", "cache-control": "no-cache"}
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_DOCUMENT_TYPES = {".pdf": "application/pdf", ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
                   ".csv": "text/plain; charset=utf-8"}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files("qwen_agent.server").joinpath("static", name).read_bytes()


async def index(request: Request) -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media = _ASSETS.get(name)  # a fixed list: nothing else under static/ (or elsewhere) is reachable
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(_read(name), media_type=media, headers=_PAGE_HEADERS)


def file_response(name: str, data: bytes, *, inline_documents: bool = False) -> Response:
    """A session file or cited document: images inline only when the bytes are PNG/JPEG, never HTML or SVG."""
    headers = {"x-content-type-options": "nosniff", "cache-control": "private, max-age=3600",
               "content-security-policy": "default-src 'none'; img-src 'self'; sandbox",
               "referrer-policy": "no-referrer"}
    if data.startswith(_PNG):
        return Response(data, media_type="image/png", headers=headers)
    if data.startswith(_JPEG):
        return Response(data, media_type="image/jpeg", headers=headers)
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if inline_documents and suffix in _DOCUMENT_TYPES:
        if suffix == ".pdf":
            headers["content-security-policy"] = "sandbox"  # the browser's PDF viewer needs to run
        return Response(data, media_type=_DOCUMENT_TYPES[suffix], headers=headers)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "file"
    headers["content-disposition"] = f'attachment; filename="{safe}"'
    return Response(data, media_type="application/octet-stream", headers=headers)
