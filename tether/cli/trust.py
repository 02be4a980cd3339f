"""Commands about trust: approvers' keys (`tether keys new`) and the workers' policy versions
(`tether policy show | diff | add | activate`). Policy commands read and write the store the
workers use (TETHER_STORE_URL), never a running workflow: a workflow keeps what it pinned."""

from __future__ import annotations

import getpass
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml
from pydantic import ValidationError

from tether.cli.apps import app
from tether.cli.output import JSON, emit, fail, kept_text, out, problems
from tether.config import Settings
from tether.handed import Unreadable, load_yaml, read_small, yaml_problem

if TYPE_CHECKING:
    from tether.domain import DomainPack
    from tether.policystore import PolicyStore

keys = typer.Typer(no_args_is_help=True, help="Approvers' signing keys.")
policy = typer.Typer(no_args_is_help=True, help="The workers' policy versions, per domain.")
app.add_typer(keys, name="keys")
app.add_typer(policy, name="policy")

DOMAIN = typer.Option(None, "--domain", help="the pack (default: the only one served)")
BY = typer.Option(None, "--by", help="who does this (default: your login name)")


@keys.command("new")
def keys_new(
    approver: str,
    keyring: Path | None = typer.Option(
        None, envvar="TETHER_KEYRING", help="the directory for the key file"
    ),
    out_file: Path | None = typer.Option(None, "--out", help="the key file (else in --keyring)"),
) -> None:
    """Make a key pair for APPROVER: the private key in a file only you can read, and the
    directory entry (the public key) on stdout, for the policy's approvers."""
    from tether.contracts import IDENT
    from tether.signing import SigningKey, key_file

    if not re.fullmatch(IDENT, approver):  # "../../etc/x" would be a file outside the keyring
        fail(f"{approver!r} is not an approver id (letters, digits and . _ : @ -, up to 128)")
    path = out_file or (key_file(keyring, approver) if keyring else None)
    if path is None:
        fail("name the key file: --out FILE, or --keyring DIR (TETHER_KEYRING)")
    if out_file is not None and not out_file.parent.is_dir():  # a keyring is made; a typo not
        fail(f"--out {out_file}: there is no folder {out_file.parent}")
    key = SigningKey.new(approver)
    try:
        key.save(path)
    except FileExistsError:
        fail(f"{path} exists: a key is never overwritten (revoke it, then make another)")
    except OSError as error:
        fail(f"{path}: {error}")
    out.print(f"key {key.id} for {approver} written to {path} (mode 0600)", style="green")
    out.print("add to the policy's approvers (tether policy add):")
    emit({approver: {"roles": ["ROLE"], "keys": [{"public_key": key.public_key}]}})


def _store() -> tuple[Settings, PolicyStore]:
    from tether.policystore import PolicyStore

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default store is a file there
    return settings, PolicyStore(settings.resolved_store_url())


def _who(by: str | None) -> str:
    """Who does this, as kept on the record: --by as given (one plain line), else the login."""
    return kept_text("--by", by, 200, lines=False) if by is not None else getpass.getuser()


def _pack(settings: Settings, domain: str | None) -> DomainPack:
    from tether import packs

    served = packs.load(settings.domains)
    domain = domain or settings.default_domain
    if domain is None and len(served) == 1:
        return served[0]
    named = [p for p in served if p.name == domain]
    if not named:
        fail(f"--domain: name one of {sorted(p.name for p in served)}")
    return named[0]


@policy.command("show")
def policy_show(
    domain: str | None = DOMAIN,
    version: str | None = typer.Option(None, help="a stored version (default: the active one)"),
    as_json: bool = JSON,
) -> None:
    """The active version (or the one named): its hash, its content, and who activated what."""
    from tether.policystore import NoSuchVersion

    settings, store = _store()
    pack = _pack(settings, domain)
    try:
        pinned = store.pinned(pack.name, version) if version else store.active(pack.name)
    except NoSuchVersion as error:
        fail(error, 1)
    if pinned is None:
        fail(f"no {pack.name} policy is active yet: a worker registers one at start", 1)
    log = store.activations(pack.name)
    if as_json:
        emit(
            {
                "domain": pack.name,
                "version": pinned.version,
                "sha256": pinned.sha256,
                "active": bool(log) and log[-1].version == pinned.version,
                "policy": pinned.policy.model_dump(mode="json"),
                "activations": [a.model_dump(mode="json") for a in log],
                "versions": [v.version for v in store.versions(pack.name)],
            }
        )
        return
    out.print(f"{pack.name} policy {pinned.version}  sha256 {pinned.sha256}")
    out.print(yaml.safe_dump(pinned.policy.model_dump(mode="json"), sort_keys=False).rstrip())
    if not pinned.policy.approvers:
        out.print("no approver directory: requests needing a person are refused", style="red")
    out.print("activations:")
    for a in log:
        out.print(f"  {a.at:%Y-%m-%d %H:%M:%S} {a.version} by {a.by}: {a.reason}")


@policy.command("diff")
def policy_diff(
    old: str,
    new: str | None = typer.Argument(None, help="default: the active version"),
    domain: str | None = DOMAIN,
    as_json: bool = JSON,
) -> None:
    """What changes from version OLD to NEW, setting by setting."""
    from tether.policystore import NoSuchVersion, diff

    settings, store = _store()
    pack = _pack(settings, domain)
    try:
        before = store.get(pack.name, old).policy
        after = store.pinned(pack.name, new) if new else store.active(pack.name)
    except NoSuchVersion as error:
        fail(error, 1)
    if after is None:
        fail(f"no {pack.name} policy is active", 1)
    lines = diff(before, after.policy)
    if as_json:
        emit({"old": old, "new": new, "changes": lines})
        return
    for line in lines or ["(no differences)"]:
        out.print(line)


@policy.command("add")
def policy_add(
    file: Path,
    domain: str | None = DOMAIN,
    by: str | None = BY,
    note: str = typer.Option("", help="why this version exists"),
    as_json: bool = JSON,
) -> None:
    """Store a version from FILE (YAML or JSON: ``version`` and the settings that differ from
    the pack's policy, like TETHER_POLICIES); checked against the pack; not activated."""
    from tether.errors import ConfigurationError
    from tether.policystore import PolicyConflict, checked

    settings, store = _store()
    pack = _pack(settings, domain)
    try:
        fields = load_yaml(read_small(file, 1_000_000))
    except Unreadable as error:
        fail(f"{file}: {error}")
    except yaml.YAMLError as error:
        fail(f"{file}: {yaml_problem(error)}")
    except RecursionError:
        fail(f"{file}: nested too deeply")
    if not isinstance(fields, dict) or not isinstance(fields.get("version"), str):
        fail(f"{file}: a mapping with a 'version' name and the settings that change")
    try:
        stored = store.add(
            pack.name,
            checked(pack, pack.policy.merged(fields)),
            by=_who(by),
            note=kept_text("--note", note, 2000, lines=True) if note.strip() else "",
        )
    except ValidationError as error:
        fail(f"{file}: {problems(error)}")
    except (ConfigurationError, PolicyConflict) as error:
        fail(error)
    if as_json:
        emit({"domain": pack.name, "version": stored.version, "sha256": stored.sha256})
        return
    out.print(f"stored {pack.name} policy {stored.version} (sha256 {stored.sha256[:12]})")
    # Quoted: a version may hold spaces or a shell's metacharacters, and this line is pasted.
    again = f"tether policy activate {shlex.quote(stored.version)} --domain {pack.name}"
    out.print(f"activate: {again} --reason …")


@policy.command("activate")
def policy_activate(
    version: str,
    domain: str | None = DOMAIN,
    reason: str = typer.Option(..., help="why (kept in the activation log)"),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Make VERSION the one new requests pin; running ones keep theirs. On the record."""
    from tether.policystore import NoSuchVersion

    settings, store = _store()
    pack = _pack(settings, domain)
    reason = kept_text("--reason", reason, 2000, lines=True)
    who = _who(by)
    try:
        activation = store.activate(pack.name, version, by=who, reason=reason)
    except NoSuchVersion as error:
        fail(error, 1)
    if as_json:
        emit(activation)
        return
    out.print(
        f"{pack.name} policy {version} active (was {activation.previous or 'none'}); "
        "running requests keep the version they pinned",
        style="green",
    )
    if not store.get(pack.name, version).policy.approvers:
        out.print("no approver directory: requests needing a person are refused", style="red")
