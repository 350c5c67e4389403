"""HTTP API: principals (bearer tokens as sha256), idempotency keys, signed callbacks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'api_principals',
        sa.Column('principal', sa.String(length=250), primary_key=True),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('token_sha256', sa.String(length=64), nullable=False, unique=True),
        sa.Column('scopes', sa.String(length=1000), nullable=False, server_default=''),
        sa.Column('webhook_secret', sa.String(length=100), nullable=True),
        sa.Column('revoked', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('created_by', sa.String(length=250), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'api_idempotency',
        sa.Column('principal', sa.String(length=250), primary_key=True),
        sa.Column('key', sa.String(length=200), primary_key=True),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_api_idempotency_created_at', 'api_idempotency', ['created_at'])
    op.create_table(
        'api_callback_events',
        sa.Column('principal', sa.String(length=250), primary_key=True),
        sa.Column('event_id', sa.String(length=200), primary_key=True),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('detail', sa.String(length=1000), nullable=False, server_default=''),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_api_callback_events_status', 'api_callback_events', ['status'])


def downgrade() -> None:
    op.drop_table('api_callback_events')
    op.drop_table('api_idempotency')
    op.drop_table('api_principals')
