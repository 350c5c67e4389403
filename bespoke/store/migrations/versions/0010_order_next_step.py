"""The orders read model says who must act next and by when, and whether a rules
decision is blocked, so the ops queues (deadlines due soon, blocked decisions)
are indexed queries instead of scans of the timeline.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('next_step', sa.String(length=300), nullable=False, server_default=''))
        batch.add_column(sa.Column('next_step_due', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('blocked', sa.String(length=500), nullable=True))
    op.create_index('ix_orders_next_step_due', 'orders', ['next_step_due'], unique=False)
    op.create_index('ix_orders_blocked', 'orders', ['blocked'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_blocked', table_name='orders')
    op.drop_index('ix_orders_next_step_due', table_name='orders')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('blocked')
        batch.drop_column('next_step_due')
        batch.drop_column('next_step')
