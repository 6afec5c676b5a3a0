"""`subledger apps …`: create and change apps; every change is a settings event."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from subledger.apps import App, AppConfig, AppConfigError, parse_entitlement
from subledger.cli.output import add_json_flag, emit, fail
from subledger.integrations import IntegrationError
from subledger.ledger import ConcurrentChangeError, Ledger, UnknownAppError, app_settings
from subledger.sealing import Sealer, SealingError
from subledger.settings import Settings
from subledger.store import StoreUnavailableError


def register(commands: Any) -> Any:
    """`apps` and its actions; returns its subparsers (integrationcommands adds to them)."""
    apps = commands.add_parser("apps", help="create, list, show and change apps")
    sub = apps.add_subparsers(dest="apps_command", required=True, metavar="ACTION")

    create = sub.add_parser("create", help="create an app; prints its keys once")
    create.add_argument("--name", required=True)
    _setting_options(create)
    create.set_defaults(handler=_create)

    for name, handler, text in (
        ("list", _list, "list apps"),
        ("show", _show, "show one app's settings"),
        ("set", _set, "change settings"),
        ("rotate-keys", _rotate, "issue a new public and secret key; the old ones stop working"),
    ):
        parser = sub.add_parser(name, help=text)
        if name != "list":
            parser.add_argument("app_id")
        if name == "set":
            _setting_options(parser)
        else:
            add_json_flag(parser)
        parser.set_defaults(handler=handler)

    for name, handler, text in (
        ("add-webhook-secret", _add_secret, "add a Stripe signing secret (rotation)"),
        ("remove-webhook-secret", _remove_secret, "remove a signing secret (or its fingerprint)"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("app_id")
        parser.add_argument("secret")
        add_json_flag(parser)
        parser.set_defaults(handler=handler)
    return sub


def _setting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--webhook-secret", action="append", default=[], metavar="whsec_…")
    track = parser.add_mutually_exclusive_group()
    track.add_argument("--track-new-purchases", dest="track", action="store_true", default=None)
    track.add_argument("--no-track-new-purchases", dest="track", action="store_false")
    parser.add_argument("--detection", metavar="anonymous|stripe_customer_id|metadata")
    parser.add_argument("--metadata-key", metavar="KEY")
    parser.add_argument("--transfer-behavior", metavar="transfer|transfer_if_no_active|…")
    parser.add_argument("--signature-tolerance", type=int, metavar="SECONDS")
    parser.add_argument(
        "--entitlement",
        action="append",
        default=None,
        metavar="ID=prod_a,prod_b",
        help="repeat per entitlement; replaces the whole mapping",
    )
    parser.add_argument("--stripe-api-key", metavar="rk_…", help="'' removes the key")
    add_json_flag(parser)


def _config(args: argparse.Namespace, current: AppConfig) -> AppConfig:
    switching = args.detection == "metadata" and current.app_user_id_detection != "metadata"
    if switching and not args.metadata_key:
        raise AppConfigError("metadata detection needs --metadata-key KEY (e.g. rc_app_user_id)")
    changes: dict[str, Any] = {
        "track_new_purchases": args.track,
        "app_user_id_detection": args.detection,
        "metadata_key": args.metadata_key,
        "transfer_behavior": args.transfer_behavior,
        "signature_tolerance_s": args.signature_tolerance,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    return msgspec.structs.replace(current, **given).validated()


def _entitlements(args: argparse.Namespace) -> dict[str, list[str]] | None:
    if args.entitlement is None:
        return None
    mapping: dict[str, list[str]] = {}
    for spec in args.entitlement:
        name, products = parse_entitlement(spec)
        if name in mapping:
            raise AppConfigError(f"entitlement {name!r} given twice")
        mapping[name] = products
    return mapping


def run_on_ledger(args: argparse.Namespace, settings: Settings, action: Any) -> int:
    """Open the store, run the action, turn refusals into one-line errors (exit 1)."""
    try:
        ledger = Ledger(settings.database, sealer=Sealer(settings.secrets_key))
    except Exception as error:  # noqa: BLE001 - any failure to open the store is one line
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    try:
        code: int = action(ledger)
        return code
    except (
        AppConfigError,
        IntegrationError,
        UnknownAppError,
        ConcurrentChangeError,
        SealingError,
    ) as error:
        return fail(args, str(error).strip("'\""))
    except StoreUnavailableError as error:
        return fail(args, f"store unavailable: {error}")
    finally:
        ledger.close()


def _describe(app: App, keys: tuple[str, str] | None = None) -> tuple[dict[str, Any], str]:
    data: dict[str, Any] = {"app_id": app.app_id}
    lines = [f"app_id:      {app.app_id}"]
    if keys:
        data |= {"public_key": keys[0], "secret_key": keys[1]}
        lines += [f"public_key:  {keys[0]}", f"secret_key:  {keys[1]}  (shown once; store it now)"]
    settings = app_settings(app)
    data["settings"] = settings
    lines += [f"{k + ':':<24} {_human(v)}" for k, v in settings.items()]
    lines.append(f"webhook URL path:        /v1/incoming-webhooks/stripe/{app.app_id}")
    return data, "\n".join(lines)


def _human(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}={_listed(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(v if isinstance(v, str) else _human(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _listed(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return "-" if value is None else str(value)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        if not args.name.strip():
            raise AppConfigError("an app needs a non-empty --name")
        app, public_key, secret_key = ledger.create_app(
            args.name.strip(),
            _config(args, AppConfig()),
            webhook_secrets=args.webhook_secret,
            entitlements=_entitlements(args),
            stripe_api_key=args.stripe_api_key,
        )
        return emit(args, *_describe(app, (public_key, secret_key)))

    return run_on_ledger(args, settings, action)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        found = ledger.list_apps()
        data = [{"app_id": a.app_id, "name": a.name} for a in found]
        human = "\n".join(f"{a.app_id}  {a.name}" for a in found) or "no apps yet"
        return emit(args, data, human)

    return run_on_ledger(args, settings, action)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    return run_on_ledger(
        args, settings, lambda ledger: emit(args, *_describe(ledger.get_app(args.app_id)))
    )


def _set(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        current = ledger.get_app(args.app_id)
        app, _ = ledger.change_app(
            args.app_id,
            config=_config(args, current.config),
            add_secrets=args.webhook_secret,
            entitlements=_entitlements(args),
            stripe_api_key=args.stripe_api_key,
        )
        return emit(args, *_describe(app))

    return run_on_ledger(args, settings, action)


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        app, keys = ledger.change_app(args.app_id, rotate_keys=True)
        return emit(args, *_describe(app, keys))

    return run_on_ledger(args, settings, action)


def _add_secret(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        app, _ = ledger.change_app(args.app_id, add_secrets=[args.secret])
        return emit(args, *_describe(app))

    return run_on_ledger(args, settings, action)


def _remove_secret(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        app, _ = ledger.change_app(args.app_id, remove_secrets=[args.secret])
        return emit(args, *_describe(app))

    return run_on_ledger(args, settings, action)
