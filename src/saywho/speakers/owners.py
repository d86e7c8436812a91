"""Every speaker library of a server: the shared one and one per API key.

With API keys each key owns its speakers: its own library file
(``Settings.speaker_library_for``), named by the key's owner id (a hash of the key).
Whoever sees every key's jobs (an admin key, or anyone when no key is configured) sees
every library too. ``SpeakerLibraries`` names them (``"shared"`` for the server's own
file), lists their speakers with their owner, and finds a speaker across them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saywho.errors import ConflictError, NotFoundError, SpeakerNotFoundError
from saywho.speakers.library import Speaker, SpeakerLibrary

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from saywho.settings import Settings

# The owner id of the server's own library (no key, admin keys, the CLI's default file).
SHARED = "shared"
# A key's owner id: the first 16 hex digits of the key's SHA-256 (``server.deps.key_owner``).
OWNER_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class OwnedSpeaker:
    """A speaker and the owner id of the library it lives in."""

    owner: str
    speaker: Speaker

    def to_dict(self) -> dict[str, Any]:
        return {**self.speaker.to_dict(), "owner": self.owner}


class SpeakerLibraries:
    """The shared library and each key's, by owner id. ``key_owners``: the owner ids of the
    configured API keys (a key's library exists once it enrols a voice)."""

    def __init__(self, settings: Settings, key_owners: Iterable[str] = ()) -> None:
        self.settings = settings
        self.key_owners = frozenset(key_owners)

    def owners(self) -> list[str]:
        """``shared`` first, then every key's owner id, configured or with a library file left."""
        folder = self.settings.data_dir / "speakers"
        on_disk = {p.stem for p in folder.glob("*.db") if OWNER_ID.fullmatch(p.stem)} if folder.is_dir() else set()
        return [SHARED, *sorted(self.key_owners | on_disk)]

    def library(self, owner: str) -> SpeakerLibrary:
        """The library of ``owner``; an owner id no key has and no file holds is a 404."""
        if owner != SHARED and owner not in self.owners():  # also keeps anything but a bare hex id out of the path
            raise NotFoundError(f"no speaker library '{owner[:100]}': use 'shared' or the owner of a key "
                                "(the 'owner' of GET /v1/speakers)", param="owner")
        return self._open(owner)

    def _open(self, owner: str) -> SpeakerLibrary:
        return SpeakerLibrary(self.settings.speaker_library_for(None if owner == SHARED else owner))

    def list(self, owners: Sequence[str]) -> list[OwnedSpeaker]:
        """The speakers of these libraries (owner ids from ``owners`` or ``library``), each by name."""
        return [OwnedSpeaker(owner, s) for owner in owners for s in self._open(owner).list()]

    def find(self, ref: str, owners: Sequence[str]) -> tuple[str, SpeakerLibrary]:
        """The one library among ``owners`` holding speaker ``ref`` (an id or a name).

        Ids are unique across libraries; a name found in several is a 409 asking for ``owner``.
        """
        found = []
        for owner in owners:
            library = self._open(owner)
            try:
                library.get(ref)
            except SpeakerNotFoundError:
                continue
            found.append((owner, library))
        if not found:
            raise SpeakerNotFoundError(f"no speaker '{ref[:100]}'", param="speaker")
        if len(found) > 1:
            raise ConflictError(f"'{ref[:100]}' names speakers of several keys ({', '.join(o for o, _ in found)}): "
                                "use the speaker's id, or say whose with ?owner=", param="owner")
        return found[0]
