"""Notifications: the events outbox (`outbox`), its catalogue of event types
(`catalogue`), webhook subscriptions (`subscriptions`) and their delivery
(`delivery`, run by the activity in bespoke/activities/webhooks.py)."""
