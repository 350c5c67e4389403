"""Each orders row carries a revision, a fresh random value written by every
sync, so an API replica can tell that its cached view of an order is still the
newest without asking Temporal.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('revision', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('revision')
