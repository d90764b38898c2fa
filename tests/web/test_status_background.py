"""`serve` publishes CRL shards and keeps OCSP responses precomputed: the app subscribes its status service to the
CA's hooks (a new certificate has its OCSP answer at once) and the background pass publishes every shard."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore import open_keystore
from jpki_remote.ca.models import CrlShard, OcspResponse
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.config import Settings
from jpki_remote.store import Database
from jpki_remote.web.app import create_app
from jpki_remote.web.background import server_tasks


def test_serve_background_publishes_crls_and_precomputes_ocsp(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", crl_shards=4, keystore_passphrase="test passphrase")
    db = Database(settings.effective_database_url)
    db.create_schema()
    keystore = open_keystore(settings)
    setup_authorities(db, keystore, settings)

    app = create_app(settings, db=db)
    service = app.state.status_service
    background = server_tasks(db, settings, app.state.get_engine, service)
    try:
        background.run_once()
        with db.session() as session:
            shards = session.scalar(select(func.count()).select_from(CrlShard))
        assert shards == 2 * settings.crl_shards  # every shard of both authorities, empty ones included

        holder = HolderIdentity(holder_ref="card-bg-1", municipality_code="131016", birth_date=date(1990, 6, 10))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = CertificateAuthority(db, keystore, settings)
        try:
            issued = ca.issue_pair("bg-request-1", holder, key.public_key(), None, date(2034, 6, 10))
        finally:
            ca.close()
        serial = format(issued.authentication.serial, "x")
        with db.session() as session:
            answers = session.scalars(select(OcspResponse).where(OcspResponse.serial_hex == serial)).all()
        assert answers, "the subscribed status service did not precompute the new certificate's OCSP answer"
    finally:
        service.close()
        db.dispose()
