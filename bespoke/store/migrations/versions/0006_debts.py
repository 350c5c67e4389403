"""What each party owes on an order (claims and debts), as the workflow sees it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('debts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('debtor', sa.String(length=300), nullable=False),
    sa.Column('creditor', sa.String(length=300), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('why', sa.String(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_debts_order_id', 'debts', ['order_id'], unique=False)
    op.create_index('ix_debts_debtor', 'debts', ['debtor'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_debts_debtor', table_name='debts')
    op.drop_index('ix_debts_order_id', table_name='debts')
    op.drop_table('debts')
