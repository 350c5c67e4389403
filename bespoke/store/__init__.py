"""The read model and the ledger in SQL (tables.py, db.py, migrations/).

Nothing is imported here: `bespoke order list` reads the default SQLite file with
the standard library alone and imports this package for the constant below.
"""

# Columns of `orders` that are bookkeeping, not the order: left out of what the
# CLI's `order list --json` and the API's list print (`orders.revision`, see
# tables.py).
ORDER_INTERNAL_COLUMNS = frozenset({"revision"})
