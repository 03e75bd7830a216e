"""The ``cascade ui`` command: resolve the store, check the address, serve until Ctrl-C.

The command prints the address it serves, warns when it listens beyond this machine (the view
has no login), and exits 0 when stopped with Ctrl-C. Starlette and uvicorn load only here, when
the command runs."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import webbrowser

import click

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``Host`` header values the server answers (without the port): the bound address,
    ``localhost``, and for a wildcard address this machine's names; anything else is refused
    (a page of another site that resolves its name to 127.0.0.1 cannot read the view)."""
    names = {host, "localhost", "127.0.0.1", "[::1]", *extra}
    if host in ("0.0.0.0", "::", "[::]"):
        names.add(socket.gethostname())
        names.add(socket.getfqdn())
    return sorted(n for n in names if n)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), or a ``ClickException``
    saying why not. Bound here, before the server starts, so the address printed is the one
    served, and a port in use is a clear error."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise click.BadParameter(f"cannot resolve {host!r}: {exc}", param_hint="'--host'") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (give another --port, "
            "or --port 0 for any free one)"
        ) from None
    sock.set_inheritable(True)
    return sock


def display_url(host: str, port: int) -> str:
    shown = host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        shown = f"[{host}]"
    return f"http://{shown}:{port}/"


@click.command("ui")
@click.option(
    "--store",
    "database",
    metavar="PATH",
    help="The run store's SQLite file, as record= takes it (default: $CASCADE_HOME/"
    "runs.sqlite3, else .cascade/runs.sqlite3 here: where `cascade run` records).",
)
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="The address to listen on. The view has no login: another address than 127.0.0.1 "
    "shows the runs (their params and errors) to whoever reaches it.",
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--open", "open_browser", is_flag=True, help="Open the view in a web browser.")
@click.option(
    "--allow-host",
    "extra_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests addressed to NAME (a name this machine is reached by); "
    "repeatable. Other Host headers are refused.",
)
def ui(
    database: str | None,
    host: str,
    port: int,
    open_browser: bool,
    extra_hosts: tuple[str, ...],
) -> None:
    """Serve a live, read-only web view of the recorded runs (Ctrl-C stops it)."""
    import uvicorn

    from cascade.records import SQLiteRunStore
    from cascade_ui.app import create_app

    if database is not None and os.path.isdir(database):
        raise click.BadParameter(
            f"'{database}' is a directory; give the SQLite file (runs.sqlite3 in it?)",
            param_hint="'--store'",
        )
    store = SQLiteRunStore(database)
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: the view has no login, so anyone who can reach "
            f"this address sees every run in {store.location} (params and errors included). "
            "Use the default 127.0.0.1 (and an SSH tunnel) unless that is what you want.",
            err=True,
        )
    app = create_app(store, allowed_hosts=allowed_hosts(host, extra_hosts))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    app.state.stopping = lambda: server.should_exit
    listening = bind(host, port)
    try:
        url = display_url(host, listening.getsockname()[1])
        click.echo(f"Cascade UI: {url}  (store {store.location}; Ctrl-C stops it)")
        sys.stdout.flush()
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        server.run(sockets=[listening])
    except KeyboardInterrupt:
        # Ctrl-C: uvicorn stopped cleanly and raised the signal again for its caller (or it
        # came before uvicorn took the signal over). The ordinary way to stop: exit 0.
        pass
    finally:
        listening.close()
    click.echo("Cascade UI stopped.")
