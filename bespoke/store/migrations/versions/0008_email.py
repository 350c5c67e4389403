"""Email: principals' addresses, the sent-message log, the outbox cursor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('api_principals', sa.Column('email', sa.String(length=254), nullable=True))
    op.create_table(
        'email_messages',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('event_id', sa.String(length=200), nullable=False),
        sa.Column('recipient', sa.String(length=250), nullable=False),
        sa.Column('address', sa.String(length=254), nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('event_id', 'recipient', name='uq_email_messages_event_recipient'),
    )
    op.create_index('ix_email_messages_order_id', 'email_messages', ['order_id'])
    op.create_index('ix_email_messages_status', 'email_messages', ['status'])
    op.create_table(
        'email_cursor',
        sa.Column('name', sa.String(length=40), primary_key=True),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('email_cursor')
    op.drop_table('email_messages')
    with op.batch_alter_table('api_principals') as batch:
        batch.drop_column('email')
