"""The authenticated HTTP API (issue 11).

    app.py          create_app(settings): the FastAPI app (+ the portal's pages)
    principals.py   principals and their tokens (sha256), integration secrets
    auth.py         the bearer-token dependency, the failed-authentication limit
    problems.py     RFC 9457 problem+json errors with stable types
    idempotency.py  Idempotency-Key on POSTs
    routes/         public (policies, me), orders (reads), actions (POSTs), callbacks
"""
