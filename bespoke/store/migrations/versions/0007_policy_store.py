"""The policy store: each pinned policy once, keyed by the sha256 of its canonical
content (plain SQLAlchemy types, as in 0001).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'policies',
        sa.Column('sha256', sa.String(length=64), primary_key=True),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('version', sa.String(), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_policies_name', 'policies', ['name'])


def downgrade() -> None:
    op.drop_index('ix_policies_name', table_name='policies')
    op.drop_table('policies')
