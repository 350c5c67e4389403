"""Portal sign-in: passwords, sessions, invitations and failed sign-ins.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'portal_passwords',
        sa.Column('principal', sa.String(length=250), primary_key=True),
        sa.Column('password_hash', sa.String(length=500), nullable=False),
        sa.Column('set_by', sa.String(length=250), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'portal_sessions',
        sa.Column('token_sha256', sa.String(length=64), primary_key=True),
        sa.Column('principal', sa.String(length=250), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_portal_sessions_principal', 'portal_sessions', ['principal'])
    op.create_table(
        'portal_invitations',
        sa.Column('token_sha256', sa.String(length=64), primary_key=True),
        sa.Column('principal', sa.String(length=250), nullable=False),
        sa.Column('created_by', sa.String(length=250), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_portal_invitations_principal', 'portal_invitations', ['principal'])
    op.create_table(
        'portal_signin_failures',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_portal_signin_failures_key', 'portal_signin_failures', ['key'])
    op.create_index('ix_portal_signin_failures_at', 'portal_signin_failures', ['at'])


def downgrade() -> None:
    op.drop_table('portal_signin_failures')
    op.drop_table('portal_invitations')
    op.drop_table('portal_sessions')
    op.drop_table('portal_passwords')
