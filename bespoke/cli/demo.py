"""`bespoke demo`: demo people with passwords and orders at interesting stages, for
the web portal. Needs a running server (`bespoke up`); safe to run again."""

from __future__ import annotations

import typer

from bespoke.cli.errors import run_async
from bespoke.settings import get_settings

app = typer.Typer(help="Create the portal's demo accounts (printed passwords) and demo orders.",
                  invoke_without_command=True)


@app.callback()
def demo() -> None:
    """Create the portal's demo accounts (printed passwords) and demo orders."""
    from bespoke.cli.order.client import OrderClient  # noqa: F401  (same error mapping as order commands)

    async def go() -> None:
        from bespoke.portal.demo import banner, demo_passwords, seed_orders
        from bespoke.runtime.client import connect
        from bespoke.store.db import get_engine

        settings = get_settings()
        client = await connect(settings)
        created = await seed_orders(client, settings)
        passwords = demo_passwords(get_engine(settings.effective_database_url))
        typer.echo(f"demo orders: {', '.join(created) if created else 'already there'}")
        typer.echo(banner(passwords, None))

    run_async(go())
