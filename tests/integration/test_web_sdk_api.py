"""What RevenueCat's web SDK needs from the API (SPEC 5): keys it accepts, keys issued before,
its headers, and CORS for the public routes only (SUBLEDGER_CORS_ORIGINS)."""

from __future__ import annotations

from subledger import apps
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.sealing import Sealer
from subledger.settings import Database


def test_keys_issued_before_the_strp_prefix_are_still_looked_up(database: Database) -> None:
    """A server that has not seen an app's keys yet looks an unknown key up in the store
    only for subledger's prefixes: the old `slpk_` prefix must stay one of them."""
    ledger = Ledger(database)
    try:
        app, _, _ = ledger.create_app("old", apps.AppConfig())
        registry = AppRegistry(ledger, Sealer())
        registry.refresh()
        old_public, old_secret = "slpk_" + "P" * 32, "slsk_" + "S" * 43
        ledger.save(
            apps.ApiKeysRotated(
                originator_id=app.id,
                originator_version=app.version + 1,
                received_at_ms=1,
                public_key_hash=apps.key_hash(old_public),
                secret_key_hash=apps.key_hash(old_secret),
            )
        )
        found = registry.authenticate(old_public)
        assert found is not None and found[0].app_id == app.app_id and found[1] is False
        assert registry.authenticate("strp_unknown0000") is None
    finally:
        ledger.close()
