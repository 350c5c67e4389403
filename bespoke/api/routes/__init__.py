"""One router per resource: public (policies), me, orders, callbacks."""
