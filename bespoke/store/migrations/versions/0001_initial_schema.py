"""Initial schema: orders read model, ledger, timeline, decision audit, buyer
accounts, credit reservations and bank transfers (as `create_all` built them).

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Plain SQLAlchemy types, not SQLModel's, so this file keeps its meaning if the
models' library changes: AutoString is String, UTCDateTime is DateTime(timezone=True).

`if_not_exists`: a database `create_all` built before migrations existed is
adopted by running this revision over it (the tables it has are kept, any missing
one is created as this revision defines it, not as today's models would).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('bank_transfers',
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('virtual_account', sa.String(length=34), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('matched_order_id', sa.String(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reference'),
    if_not_exists=True,
    )
    op.create_index('ix_bank_transfers_virtual_account', 'bank_transfers', ['virtual_account'], unique=False, if_not_exists=True)

    op.create_table('buyer_accounts',
    sa.Column('buyer', sa.String(), nullable=False),
    sa.Column('virtual_account', sa.String(length=34), nullable=False),
    sa.Column('credit_limit', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('frozen', sa.Boolean(), nullable=False),
    sa.Column('frozen_reason', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('buyer'),
    sa.UniqueConstraint('virtual_account'),
    if_not_exists=True,
    )
    op.create_table('credit_reservations',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('buyer', sa.String(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('released', sa.Boolean(), nullable=False),
    sa.Column('overdue', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('order_id'),
    if_not_exists=True,
    )
    op.create_index('ix_credit_reservations_buyer', 'credit_reservations', ['buyer'], unique=False, if_not_exists=True)

    op.create_table('decisions',
    sa.Column('decision_id', sa.String(length=200), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('explanation', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('decision_id'),
    if_not_exists=True,
    )
    op.create_index('ix_decisions_order_id', 'decisions', ['order_id'], unique=False, if_not_exists=True)

    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('txn_key', sa.String(length=200), nullable=False),
    sa.Column('leg', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('memo', sa.String(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('txn_key', 'leg', name='uq_ledger_txn_leg'),
    if_not_exists=True,
    )
    op.create_index('ix_ledger_entries_order_id', 'ledger_entries', ['order_id'], unique=False, if_not_exists=True)
    op.create_index('ix_ledger_entries_txn_key', 'ledger_entries', ['txn_key'], unique=False, if_not_exists=True)

    op.create_table('orders',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('buyer', sa.String(), nullable=False),
    sa.Column('seller', sa.String(), nullable=False),
    sa.Column('payment_plan', sa.String(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('policy_name', sa.String(), nullable=False),
    sa.Column('policy_version', sa.String(), nullable=False),
    sa.Column('paid', sa.BigInteger(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('released_to_seller', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id'),
    if_not_exists=True,
    )
    op.create_index('ix_orders_buyer', 'orders', ['buyer'], unique=False, if_not_exists=True)
    op.create_index('ix_orders_payment_plan', 'orders', ['payment_plan'], unique=False, if_not_exists=True)
    op.create_index('ix_orders_seller', 'orders', ['seller'], unique=False, if_not_exists=True)
    op.create_index('ix_orders_stage', 'orders', ['stage'], unique=False, if_not_exists=True)

    op.create_table('timeline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(), nullable=False),
    sa.Column('message', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id', 'seq', name='uq_timeline_order_seq'),
    if_not_exists=True,
    )
    op.create_index('ix_timeline_order_id', 'timeline', ['order_id'], unique=False, if_not_exists=True)



def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_timeline_order_id', table_name='timeline')

    op.drop_table('timeline')
    op.drop_index('ix_orders_stage', table_name='orders')
    op.drop_index('ix_orders_seller', table_name='orders')
    op.drop_index('ix_orders_payment_plan', table_name='orders')
    op.drop_index('ix_orders_buyer', table_name='orders')

    op.drop_table('orders')
    op.drop_index('ix_ledger_entries_txn_key', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_order_id', table_name='ledger_entries')

    op.drop_table('ledger_entries')
    op.drop_index('ix_decisions_order_id', table_name='decisions')

    op.drop_table('decisions')
    op.drop_index('ix_credit_reservations_buyer', table_name='credit_reservations')

    op.drop_table('credit_reservations')
    op.drop_table('buyer_accounts')
    op.drop_index('ix_bank_transfers_virtual_account', table_name='bank_transfers')

    op.drop_table('bank_transfers')
