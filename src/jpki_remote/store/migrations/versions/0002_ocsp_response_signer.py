"""Precomputed OCSP responses remember their signer (SHA-256 of the delegated OCSP certificate they embed).

When ``ca setup`` renews or replaces an authority's OCSP signer, the responses signed under the old certificate are
found by this column (refreshed at once; the responder never serves them once it knows the new signer). Rows that
exist before this revision get "" and are re-signed by the next refresh.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ca_ocsp_responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signer_sha256", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("ca_ocsp_responses", schema=None) as batch_op:
        batch_op.drop_column("signer_sha256")
