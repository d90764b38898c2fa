"""The server-rendered pages: kiosk (コンビニ キオスク端末), online portal, counter (staff) and admin.

``router`` is a FastAPI ``APIRouter`` the app factory includes. The pages are Jinja2 templates plus small vanilla
JavaScript that talks to the JSON API under ``/api/v1`` and, for card operations, to the terminal agent. Nothing is
loaded from a CDN: CSS, scripts and fonts (the system's Noto CJK) are local, so every page works offline.
"""

from jpki_remote.web.pages.routes import router

__all__ = ["router"]
