"""Notifications: the events outbox, webhook subscriptions and their delivery log;
the timeline keeps each entry's structured `data`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('timeline', sa.Column('data', sa.JSON(), nullable=True))
    op.create_table(
        'events',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('event_id', sa.String(length=200), nullable=False, unique=True),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=300), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('buyer', sa.String(length=200), nullable=False),
        sa.Column('seller', sa.String(length=200), nullable=False),
        sa.Column('carrier', sa.String(length=100), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('order_id', 'seq', name='uq_events_order_seq'),
    )
    op.create_index('ix_events_order_id', 'events', ['order_id'])
    op.create_index('ix_events_type', 'events', ['type'])
    op.create_table(
        'webhook_subscriptions',
        sa.Column('id', sa.String(length=40), primary_key=True),
        sa.Column('principal', sa.String(length=250), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('event_types', sa.String(length=1000), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', sa.String(length=500), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_webhook_subscriptions_principal', 'webhook_subscriptions', ['principal'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('subscription_id', sa.String(length=40), nullable=False),
        sa.Column('event_pk', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('pending_since', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('subscription_id', 'event_id', name='uq_webhook_deliveries_sub_event'),
    )
    op.create_index('ix_webhook_deliveries_subscription_id', 'webhook_deliveries', ['subscription_id'])
    op.create_index('ix_webhook_deliveries_pending', 'webhook_deliveries',
                    ['status', 'subscription_id', 'order_id', 'event_pk'])


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_subscriptions')
    op.drop_table('events')
    with op.batch_alter_table('timeline') as batch:
        batch.drop_column('data')
