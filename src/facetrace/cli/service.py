"""Service commands: ``serve``, ``users add/list/disable``, ``audit verify``,
``cases purge``. Registered into the main Typer app by :func:`register`; each is a thin
wrapper over the same service functions the API uses."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from facetrace.config import ServiceConfig

users_app = typer.Typer(no_args_is_help=True, help="Manage accounts from the shell.")
audit_app = typer.Typer(no_args_is_help=True, help="Check the audit log.")
cases_app = typer.Typer(no_args_is_help=True, help="Case maintenance.")


def _config(ctx: typer.Context) -> ServiceConfig:
    """The service settings: environment, plus what the main callback resolved from its
    options (``--data``, ``--database-url``, ``--model``, ``--backend``)."""
    from facetrace.cli.common import load_settings
    from facetrace.config import ServiceConfig

    return load_settings(ServiceConfig, dict(getattr(ctx.obj, "overrides", {})))


@contextmanager
def _transaction(ctx: typer.Context, *, verify_only: bool = False) -> Iterator[Session]:
    """One transaction on the installation's database, closed with the command. The
    audit key is bound (and created on first use), so the command's entries are keyed."""
    from facetrace.service import audit
    from facetrace.service.audit_key import key_path, load_key
    from facetrace.store.db import Database, sqlite_url, transaction

    cfg = _config(ctx)
    cfg.data.mkdir(parents=True, exist_ok=True)
    key = load_key(key_path(cfg.data, cfg.audit_key_file), create=not verify_only)
    database = Database.open(cfg.database_url or sqlite_url(cfg.data))
    try:
        if verify_only:  # verifying changes nothing: no sealing of an unkeyed log
            audit.bind_key(database, key)
        else:
            audit.bind(database, key)
        with transaction(database.sessions) as session:
            yield session
    finally:
        database.dispose()


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (env FACETRACE_SERVICE__HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env FACETRACE_SERVICE__PORT).")] = None,
) -> None:
    """Run the web service. On an empty data directory, create "admin" and print its
    one-time password."""
    import uvicorn

    from facetrace.errors import DataDirInUse
    from facetrace.gallery.owner import SERVICE, current_owner, refusal
    from facetrace.server.app import create_app
    from facetrace.server.health import require_data_dir
    from facetrace.service import accounts

    cfg = _config(ctx)
    # fail now with one line, not in the server's start-up with a traceback
    require_data_dir(cfg.data)
    owner = current_owner(cfg.data)
    if owner is not None:
        raise DataDirInUse(refusal(cfg.data, owner, SERVICE))
    service = cfg.service.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    cfg = cfg.model_copy(update={"service": service})
    params = cfg.index_params()
    if params.get("uri"):  # a Milvus index: fail now, not on the first search
        from facetrace.index.milvus import check_connection

        check_connection(params)
    with _transaction(ctx) as s:
        password = accounts.bootstrap_admin(s)
    if password:
        sys.stdout.write(
            "\nCreated the first administrator account.\n"
            f"  user name: admin\n  password:  {password}\n"
            "This password is shown only once; log in and change it on the Account page.\n\n"
        )
        sys.stdout.flush()
    sys.stderr.write(f"facetrace serving on http://{service.host}:{service.port}/\n")
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from loopback; which
    # proxies to believe is the service's setting (server/proxies.py)
    uvicorn.run(
        create_app(cfg),
        host=service.host,
        port=service.port,
        log_level="info",
        proxy_headers=False,
    )


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    username: str,
    role: Annotated[list[str], typer.Option("--role", "-r", help="Repeat for several roles.")],
    department: Annotated[
        str | None, typer.Option(help="Needed for investigators, reviewers, supervisors.")
    ] = None,
    full_name: Annotated[str, typer.Option()] = "",
) -> None:
    """Add an account and print its one-time password (changed at the first login). A
    department that does not exist yet (case aside) is created."""
    from facetrace.service import accounts

    password = accounts.generate_password()
    with _transaction(ctx) as s:
        accounts.create_user(
            s,
            actor=accounts.SYSTEM,
            username=username,
            password=password,
            roles=accounts.parse_roles(role),
            department=department,
            full_name=full_name,
            one_time=True,
        )
    sys.stdout.write(f"{username.lower()}\t{password}\n")


@users_app.command("reset-password")
def users_reset_password(ctx: typer.Context, username: str) -> None:
    """Give an account a new one-time password (printed; changed at its next login)."""
    from facetrace.service import accounts

    with _transaction(ctx) as s:
        password = accounts.reset_password(s, actor=accounts.SYSTEM, username=username)
    sys.stdout.write(f"{username.lower()}\t{password}\n")


@users_app.command("list")
def users_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List accounts (tab-separated, or JSON)."""
    from facetrace.service import accounts

    with _transaction(ctx) as s:
        rows: list[dict[str, Any]] = [
            {
                "username": u.username,
                "roles": u.roles.split(","),
                "department": u.department.name if u.department else None,
                "active": u.active,
            }
            for u in accounts.list_users(s, actor=accounts.SYSTEM)
        ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for r in rows:
        sys.stdout.write(
            f"{r['username']}\t{','.join(r['roles'])}\t{r['department'] or '-'}\t"
            f"{'active' if r['active'] else 'disabled'}\n"
        )


@users_app.command("disable")
def users_disable(ctx: typer.Context, username: str) -> None:
    """Disable an account (ends its sessions and revokes its API keys)."""
    from facetrace.service import accounts

    with _transaction(ctx) as s:
        accounts.set_active(s, actor=accounts.SYSTEM, username=username, active=False)
    sys.stdout.write(f"{username} disabled\n")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Check the keyed hash chain with the audit key (FACETRACE_AUDIT_KEY_FILE, default
    <data>/audit.key); exit 1 and name the first altered, inserted or deleted entry, or a
    head that is missing or not signed with the key."""
    from facetrace.service import audit

    with _transaction(ctx, verify_only=True) as s:
        report = audit.verify(s)
    if as_json:
        out = {
            "ok": report.ok,
            "entries": report.entries,
            "head_hash": report.head_hash,
            "keyed_from": report.keyed_from,
            "key_id": report.key_id,
            "problem": None
            if report.problem is None
            else {
                "kind": report.problem.kind,
                "seq": report.problem.seq,
                "message": report.problem.message,
            },
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    elif report.ok:
        sys.stdout.write(
            f"ok: {report.entries} entries, keyed from entry {report.keyed_from} "
            f"(key {report.key_id}), head {report.head_hash}\n"
        )
    else:
        assert report.problem is not None
        sys.stdout.write(
            f"BROKEN at entry {report.problem.seq} ({report.problem.kind}): "
            f"{report.problem.message}\n"
        )
    if not report.ok:
        raise typer.Exit(1)


@cases_app.command("purge")
def cases_purge(ctx: typer.Context) -> None:
    """Delete probe photos whose case retention period has ended (run it daily)."""
    from facetrace.service import cases

    with _transaction(ctx) as s:
        n = cases.purge_due(s)
    sys.stdout.write(f"purged {n} probe photo(s)\n")


def register(app: typer.Typer) -> None:
    """Add the service commands to the main ``facetrace`` command."""
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.add_typer(cases_app, name="cases")
