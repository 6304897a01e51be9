"""``GET /images/{name}``: a public image host for the gateway's guarded fetcher.

A translation for a provider that cannot reference image URLs (Gemini) fetches them itself;
the tests point it here (through the fetcher's test seam, which maps a public-looking name to
127.0.0.1). No key is asked, as on a public host. ``/images/pixel.png`` is a 1x1 PNG,
``/images/page.html`` is not an image at all.
"""

from __future__ import annotations

from aiohttp import web

PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc000000301010018dd8db00000000049454e44ae426082"
)
PREFIX = "/images/"


def handle(request: web.Request) -> web.Response:
    name = request.path[len(PREFIX):]
    if name == "pixel.png":
        return web.Response(body=PIXEL_PNG, content_type="image/png")
    if name == "page.html":
        return web.Response(text="<html>not an image</html>", content_type="text/html")
    return web.Response(status=404, text="not found")
