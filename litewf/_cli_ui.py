"""``litewf ui``: serve the dashboard (``_ui``) over ``--db`` on a local port.

It listens on 127.0.0.1 only, unless ``--host`` names another address; then it warns
loudly (there is no login: whoever reaches the port sees every workflow's data and can
cancel, resume and fork). Starlette and uvicorn come with the ``ui`` extra; without them
the command says which extra to install.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from ._exceptions import LitewfError

__all__ = ["MISSING_EXTRA", "add_command", "is_loopback"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MISSING_EXTRA = (
    "litewf ui needs Starlette and uvicorn, which come with the ui extra: pip install 'litewf[ui]'"
)


def add_command(sub: Any) -> None:
    """Add ``ui`` to the parser's subcommands (``sub``); it serves until interrupted
    (``standalone``: no session of ``_cli``'s)."""
    summary = "serve a local web dashboard over the database (needs litewf[ui])"
    p = sub.add_parser("ui", help=summary, description=summary)
    p.set_defaults(standalone=_run)
    p.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help="the database file")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--host",
        default=None,
        metavar="H",
        help=f"the address to listen on (default {DEFAULT_HOST}; another one is reachable "
        "by others, and the dashboard has no login)",
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from . import _ui as ui
    except ImportError:
        print(f"litewf: error: {MISSING_EXTRA}", file=sys.stderr)
        return 1
    host = args.host or DEFAULT_HOST
    if not is_loopback(host):
        print(
            f"litewf ui: WARNING: listening on {host}, not on 127.0.0.1: anyone who can "
            "reach this address can read every workflow's inputs, outputs, events and "
            "messages, and cancel, resume or fork workflows; there is no login. Use it "
            "only on a network you trust, or put an authenticating proxy in front.",
            file=sys.stderr,
        )
    import anyio  # imported when run, as every command's machinery: quick ``--help``

    from ._dbfile import absolute_path

    path = absolute_path(args.db)
    try:
        anyio.run(_check_opens, path, backend="asyncio")  # a clear error before listening
    except LitewfError as exc:
        print(f"litewf: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"litewf ui: {path} on http://{shown}:{args.port}/ (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(
        ui.create_app(path, host=host),
        host=host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    return 0


async def _check_opens(path: str) -> None:
    from ._client import Client

    async with Client(path):
        pass
