"""Sign-in sessions of the admin and of counter staff (cookie sessions of the web pages).

Only the SHA-256 of a session token is stored: a database reader cannot sign in as anyone. ``subject`` is the staff
id, or for the admin a fingerprint of the admin token in force at sign-in (a new admin token ends old sessions).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


class LoginSession(Base):
    __tablename__ = "web_login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | staff
    subject: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
