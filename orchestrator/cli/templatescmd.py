"""``outreach templates lint | preview | send-test``: the template author's tools.

``lint`` prints ``PATH:LINE: error|warning: message`` and exits 2 on any error.
``preview`` prints the message and writes it as HTML (and a letter as PDF) for the
sample debtor or a real account. ``send-test`` sends it to an address of yours
through the channel's configured adapter.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

from orchestrator.errors import OutreachError

templates_app = typer.Typer(
    help="Check, preview and test-send message templates.\n\nGuide: docs/templates.md.",
    no_args_is_help=True,
)

_CONFIG = typer.Option(None, "--config", help="configuration directory (OUTREACH_CONFIG)")
_TEMPLATES = typer.Option(None, "--templates", help="template directory (OUTREACH_TEMPLATES)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(templates_app, name="templates")


def _dirs(config: Path | None, templates: Path | None) -> tuple[Path, Path]:
    config_dir = config or Path(os.environ.get("OUTREACH_CONFIG") or "config")
    templates_dir = templates or Path(os.environ.get("OUTREACH_TEMPLATES") or "templates")
    if not templates_dir.is_dir():
        typer.echo(f"{templates_dir}: error: no such template directory", err=True)
        raise typer.Exit(2)
    return config_dir, templates_dir


def _fail(exc: OutreachError) -> NoReturn:
    for problem in getattr(exc, "problems", None) or []:
        typer.echo(str(problem), err=True)
    if not getattr(exc, "problems", None):
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _config(config_dir: Path) -> Any:
    from orchestrator.config.loading import load_config
    from orchestrator.config.models import Config

    if not config_dir.is_dir():
        typer.echo(
            f"{config_dir}: warning: no configuration directory; "
            "using the default policy (no content rules)",
            err=True,
        )
        return Config()
    try:
        return load_config(config_dir)
    except OutreachError as exc:
        _fail(exc)


def _public_url() -> str:
    return (os.environ.get("OUTREACH_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")


@templates_app.command("lint")
def lint(
    names: list[str] = typer.Argument(
        None, metavar="[NAME...]", help="template names, or CHANNEL/NAME (default: all)"
    ),
    config: Path | None = _CONFIG,
    templates: Path | None = _TEMPLATES,
) -> None:
    """Render every template in every locale with sample data and check it.

    Exit 2 when there is an error; warnings (an SMS over 2 segments) do not fail.
    What each check means: docs/templates.md.
    """
    from orchestrator.cli.configcmd import report_problems
    from orchestrator.content.template_lint import lint_templates

    config_dir, templates_dir = _dirs(config, templates)
    cfg = _config(config_dir)
    problems = lint_templates(templates_dir, cfg, names or None, public_url=_public_url())
    report_problems(problems, templates_dir)


def _channels_of(templates_dir: Path, name: str, channel: str | None) -> list[str]:
    from orchestrator.content.template_lint import discover

    if "/" in name:
        channel, name = name.split("/", 1)
    found = sorted(
        {
            f.channel
            for f in discover(templates_dir, [name])
            if channel is None or f.channel == channel
        }
    )
    if not found:
        where = f"{channel}/{name}" if channel else name
        typer.echo(f"{templates_dir}: error: no template named {where!r}", err=True)
        raise typer.Exit(2)
    return found


def _load_account(account_id: str) -> Any:
    from orchestrator.config.settings import Settings
    from orchestrator.store.accounts import load_account
    from orchestrator.store.db import open_database

    try:
        cipher = Settings.from_env().cipher()
    except OutreachError as exc:
        _fail(exc)
    engine = open_database(os.environ.get("OUTREACH_DATABASE_URL") or "sqlite:///var/outreach.db")
    try:
        with engine.connect() as conn:
            account = load_account(conn, cipher, account_id)
    finally:
        engine.dispose()
    if account is None:
        typer.echo(f"{account_id}: error: no such account", err=True)
        raise typer.Exit(2)
    return account


def _render(
    templates_dir: Path,
    cfg: Any,
    channel: str,
    name: str,
    locale: str | None,
    account: Any,
    creditor: str | None,
    message_id: str,
) -> tuple[Any, str]:
    """(Rendered, locale) for the sample debtor or the account."""
    from orchestrator.content.preview import account_context, sample_context
    from orchestrator.content.rendering import TemplateRenderer

    renderer = TemplateRenderer(templates_dir)
    if account is not None:
        locale = locale or account.locale or "en-US"
        context = account_context(
            account,
            cfg,
            today=datetime.now(UTC).date(),
            channel=channel,
            locale=locale,
            public_url=_public_url(),
            secret=os.environ.get("OUTREACH_SECRET_KEY"),
            message_id=message_id,
        )
    else:
        locale = locale or "en-US"
        chosen = None
        if creditor is not None:
            chosen = cfg.creditor(creditor)
            if chosen is None:
                typer.echo(
                    f"--creditor: error: no creditor {creditor!r} in creditors.yaml", err=True
                )
                raise typer.Exit(2)
        context = sample_context(locale, creditor=chosen, public_url=_public_url(), channel=channel)
    try:
        return renderer.render(channel, name, locale, context), locale
    except OutreachError as exc:
        _fail(exc)


@templates_app.command("preview")
def preview(
    name: str = typer.Argument(..., metavar="NAME", help="template name, or CHANNEL/NAME"),
    channel: str | None = typer.Option(
        None, "--channel", help="sms, voice, email or letter (default: every channel that has NAME)"
    ),
    locale: str | None = typer.Option(
        None, "--locale", help="e.g. zh-CN (default: the account's, or en-US)"
    ),
    account_id: str | None = typer.Option(
        None, "--account", metavar="ID", help="a real account (needs OUTREACH_DATA_KEYS)"
    ),
    sample: bool = typer.Option(False, "--sample", help="the sample debtor (the default)"),
    creditor: str | None = typer.Option(
        None, "--creditor", metavar="KEY", help="with --sample: a creditor of creditors.yaml"
    ),
    out: Path = typer.Option(Path("var/preview"), "--out", help="where the files go"),
    config: Path | None = _CONFIG,
    templates: Path | None = _TEMPLATES,
) -> None:
    """Print the message and write it as HTML (a letter also as PDF); print the paths.

    Guide: docs/templates.md."""
    from orchestrator.content.preview import write_preview

    if account_id is not None and sample:
        typer.echo("error: give --account ID or --sample, not both", err=True)
        raise typer.Exit(2)
    config_dir, templates_dir = _dirs(config, templates)
    cfg = _config(config_dir)
    channels = _channels_of(templates_dir, name, channel)
    name = name.split("/", 1)[-1]
    account = _load_account(account_id) if account_id is not None else None
    for ch in channels:
        rendered, used = _render(
            templates_dir, cfg, ch, name, locale, account, creditor, "m_" + "0" * 24
        )
        typer.echo(f"== {ch}/{name} ({used}) from {rendered.template_path}")
        if rendered.subject:
            typer.echo(f"Subject: {rendered.subject}\n")
        typer.echo(rendered.text)
        if ch == "sms":
            from channels.segments import segments

            info = segments(rendered.text)
            unit = "characters" if info.encoding == "UCS-2" else "GSM-7 characters"
            typer.echo(
                f"\nSMS: {info.segments} segment{'s' if info.segments != 1 else ''}, "
                f"{info.encoding}, {info.units} {unit}"
            )
        try:
            files = write_preview(
                rendered,
                channel=ch,
                name=name,
                locale=used,
                out_dir=out,
                templates_dir=templates_dir,
            )
        except OutreachError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"\nHTML: {files.html}")
        if files.pdf is not None:
            typer.echo(f"PDF:  {files.pdf}")
        typer.echo("")


@templates_app.command("send-test")
def send_test(
    name: str = typer.Argument(..., metavar="NAME", help="template name, or CHANNEL/NAME"),
    to: str = typer.Option(
        ..., "--to", metavar="ADDRESS", help="your phone number (E.164) or email address"
    ),
    channel: str | None = typer.Option(
        None, "--channel", help="needed when NAME is in several channels"
    ),
    locale: str | None = typer.Option(None, "--locale"),
    account_id: str | None = typer.Option(
        None, "--account", metavar="ID", help="render with a real account's data"
    ),
    creditor: str | None = typer.Option(None, "--creditor", metavar="KEY"),
    config: Path | None = _CONFIG,
    templates: Path | None = _TEMPLATES,
) -> None:
    """Send the rendered message to ADDRESS through the channel's configured adapter.

    The subject is marked [TEST]; nothing is recorded against any account.
    Guide: docs/templates.md.
    """
    from channels.base import OutboundMessage
    from channels.registry import create_adapter
    from orchestrator.clock import SystemClock

    config_dir, templates_dir = _dirs(config, templates)
    cfg = _config(config_dir)
    channels = _channels_of(templates_dir, name, channel)
    if len(channels) > 1:
        typer.echo(
            f"error: {name!r} is a template of {', '.join(channels)}: choose one with --channel",
            err=True,
        )
        raise typer.Exit(2)
    ch = channels[0]
    name = name.split("/", 1)[-1]
    problem = _address_problem(ch, to)
    if problem is not None:
        typer.echo(f"--to: error: {problem}", err=True)
        raise typer.Exit(2)
    channel_cfg = cfg.channels.get(ch)
    if channel_cfg is None:
        typer.echo(f"error: channel {ch!r} is not in channels.yaml", err=True)
        raise typer.Exit(2)
    account = _load_account(account_id) if account_id is not None else None
    message_id = "m_" + secrets.token_hex(12)
    rendered, used = _render(templates_dir, cfg, ch, name, locale, account, creditor, message_id)
    message = OutboundMessage(
        message_id=message_id,
        channel=ch,
        account_id=account.account_id if account is not None else "TEST",
        debtor_id=account.debtor_id if account is not None else "TEST",
        to=to,
        from_=str(channel_cfg.options.get("from", "")),
        subject=f"[TEST] {rendered.subject}" if rendered.subject else None,
        text=rendered.text,
        html=rendered.html,
        templates_dir=templates_dir,
        locale=used,
        metadata={"test": True, "template": f"{ch}/{name}"},
    )
    try:
        adapter = create_adapter(ch, channel_cfg, base_dir=Path.cwd(), clock=SystemClock())
        result = adapter.send(message)
        close = getattr(adapter, "close", None)
        if close is not None:  # written and durable before we say so
            close()
    except OutreachError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"sent {ch}/{name} ({used}) to {to} through {channel_cfg.adapter}: "
        f"message {message_id}, provider id {result.provider_id}, {result.status}"
    )


def _address_problem(channel: str, to: str) -> str | None:
    """Why ``to`` cannot receive a test of this channel, or ``None``: a text or a call
    needs a valid number in E.164 form, an email an address."""
    if channel in ("sms", "voice"):
        import phonenumbers

        try:
            number = phonenumbers.parse(to, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            return f"{to!r} is not a phone number in E.164 form (e.g. +12125550100) for {channel}"
        return None
    if channel == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", to):
        return f"{to!r} is not an email address"
    return None
