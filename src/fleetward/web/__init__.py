"""The daemon's read-only web view: server-rendered status pages and their live updates.

`web_routes` are mounted on the API's Starlette app by the composition root;
`LiveView` is the reporter that keeps what the pages show beyond the store and
wakes the pages that listen. Nothing here changes state.
"""

from fleetward.web.commits import CommitReader, repository_of
from fleetward.web.live import LiveView
from fleetward.web.routes import COOKIE, web_routes
from fleetward.web.sources import WebSources, public_url

__all__ = [
    "COOKIE",
    "CommitReader",
    "LiveView",
    "WebSources",
    "public_url",
    "repository_of",
    "web_routes",
]
