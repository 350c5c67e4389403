"""Held bank transfers: why a transfer was held, and who matched or refunded it,
why and when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('bank_transfers') as batch:
        batch.add_column(sa.Column('held_reason', sa.String(), nullable=False, server_default=''))
        batch.add_column(sa.Column('resolved_by', sa.String(length=200), nullable=False, server_default=''))
        batch.add_column(sa.Column('resolved_reason', sa.String(length=500), nullable=False, server_default=''))
        batch.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bank_transfers') as batch:
        batch.drop_column('resolved_at')
        batch.drop_column('resolved_reason')
        batch.drop_column('resolved_by')
        batch.drop_column('held_reason')
