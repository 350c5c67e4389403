"""Audit trail of credit-line changes (who, why, old and new limit).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('credit_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('buyer', sa.String(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('old_limit', sa.BigInteger(), nullable=False),
    sa.Column('new_limit', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('unfroze', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_credit_changes_buyer', 'credit_changes', ['buyer'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_credit_changes_buyer', table_name='credit_changes')
    op.drop_table('credit_changes')
