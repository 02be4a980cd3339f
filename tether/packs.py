"""The registry of domain packs: workers, clients and workflows find a pack by its name.

A process loads the packs it serves once (``load``), from installed distributions (entry
points in the ``tether.domains`` group) or from ``module:ATTRIBUTE`` paths; workflows then
``get`` them by the name their input carries. The registry is configuration, like code: the
same packs give the same decisions on replay.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from tether.domain import DomainPack

ENTRY_POINTS = "tether.domains"

_PACKS: dict[str, DomainPack] = {}


class UnknownDomain(LookupError):
    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(f"no domain pack {name!r}{detail}; loaded: {sorted(_PACKS) or 'none'}")
        self.name = name


def register(pack: DomainPack) -> DomainPack:
    """Add ``pack``; the same pack twice is fine, another pack under its name is not."""
    known = _PACKS.get(pack.name)
    if known is not None and known is not pack:
        raise ValueError(f"two domain packs are called {pack.name!r}")
    _PACKS[pack.name] = pack
    return pack


def get(name: str) -> DomainPack:
    try:
        return _PACKS[name]
    except KeyError:
        raise UnknownDomain(name) from None


def installed() -> dict[str, str]:
    """Entry-point name -> where its pack lives, for every installed pack."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}


def _import(spec: str) -> DomainPack:
    """``module:ATTRIBUTE`` (or a bare module holding ``PACK``) to its pack."""
    module, _, attribute = spec.partition(":")
    pack = getattr(importlib.import_module(module), attribute or "PACK", None)
    if not isinstance(pack, DomainPack):
        raise ValueError(f"{spec}: not a DomainPack")
    return pack


def load(specs: Iterable[str] | None = None) -> list[DomainPack]:
    """Register and return the packs named by ``specs``: entry-point names or import paths.
    None: every installed pack."""
    available = installed()
    chosen = list(available) if specs is None else list(specs)
    packs = []
    for spec in chosen:
        where = available.get(spec, spec)
        if ":" not in where and "." not in where:
            raise UnknownDomain(
                spec, f" installed (installed: {sorted(available)}; or name module:ATTRIBUTE)"
            )
        try:
            pack = _import(where)
        except ModuleNotFoundError as err:
            hint = f" ({err}: is the folder holding it on PYTHONPATH?)"
            raise UnknownDomain(spec, hint) from None
        packs.append(register(pack))
    return packs
