"""bespoke: durable made-to-order purchases on Temporal."""
