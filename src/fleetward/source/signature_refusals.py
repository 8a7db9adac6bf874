"""What a refused signature says: git's verdict (%G?) as an error naming the commit, the
signer and why, with what to do about it (`signatures` asks git; this words the answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleetward.errors import UnverifiedRevision
from fleetward.model import Revision

MAX_SUBJECT = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TrustedKeys(Protocol):
    """The files of trusted keys a refusal names (`signatures.SignaturePolicy`)."""

    @property
    def allowed_signers(self) -> Path | None: ...

    @property
    def gpg_keyring(self) -> Path | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """git's %G? letter and what it knows of the signature."""

    letter: str
    key: str  # %GK: an OpenPGP key id, or an SSH key's SHA256 fingerprint
    fingerprint: str  # %GF
    signer: str  # %GS: the allowed signer's principal, or the OpenPGP user id
    subject: str
    said: str  # git verify-commit's words, or ""

    @property
    def ssh(self) -> bool:
        return self.key.startswith("SHA256:")

    @property
    def who(self) -> str:
        """The signer as far as git knows it ("" when nothing is known)."""
        if not self.key:
            return self.signer
        kind = "SSH key" if self.ssh else "OpenPGP key"
        key = self.key if self.ssh else (self.fingerprint or self.key)
        return f"{self.signer} ({kind} {key})" if self.signer else f"the {kind} {key}"


def refusal(revision: Revision, verdict: Verdict, policy: TrustedKeys) -> UnverifiedRevision:
    """The error for a commit whose verdict is not G: what, why, and what to do."""
    commit = f"Commit {revision.short} {verdict.subject!r}"
    git_said = f" git verify-commit said: {verdict.said.rstrip('.')}." if verdict.said else ""
    kept = "Nothing of it was applied; the last good revision stays in force."
    letter = verdict.letter
    if letter == "N":
        error = f"{commit} is not signed"
        reason = f"--verify-signatures applies only commits signed by a trusted key. {kept}"
        resolution = (
            f"Sign the commit with a key listed in {policy.describe()} (git commit -S; for an "
            "SSH key with -c gpg.format=ssh -c user.signingkey=KEY.pub) and push it."
        )
    elif letter == "U" or (letter == "E" and verdict.key):
        error = f"{commit} is signed by a key that is not trusted"
        reason = (
            f"It is signed by {verdict.who}, which {_listed_in(verdict, policy)}.{git_said} {kept}"
        )
        resolution = (
            f"If {verdict.who} may change this repository, {_how_to_trust(verdict, policy)}; "
            "otherwise sign the commit again with a trusted key."
        )
    elif letter == "B":
        by = f" by {verdict.who}" if verdict.who else ""
        error = f"{commit} has a bad signature"
        reason = (
            f"The signature{by} does not match the commit's content: the commit was changed "
            f"after it was signed, or the signature is damaged.{git_said} {kept}"
        )
        resolution = (
            f"Do not trust this commit: find out how it came to be (git cat-file commit "
            f"{revision.id} shows it), and push a commit signed afresh by a trusted key."
        )
    elif letter in ("X", "Y", "R"):
        what = {
            "X": "a signature that has expired",
            "Y": "a key that has expired",
            "R": "a key that was revoked",
        }[letter]
        error = f"{commit} is signed with {what}"
        reason = f"It is signed by {verdict.who or 'an unknown key'}.{git_said} {kept}"
        resolution = "Sign the commit again with a current trusted key" + (
            " and remove the revoked key from --gpg-keyring."
            if letter == "R"
            else ", or extend the key's expiry and export it into --gpg-keyring again."
        )
    else:
        error = f"{commit}'s signature cannot be checked"
        reason = (
            f"git's verdict is {letter or 'empty'!r}, not a good signature by a trusted key."
            f"{git_said} {kept}"
        )
        resolution = (
            "Check that gpg and ssh-keygen are installed, and sign the commit with a key "
            f"listed in {policy.describe()}."
        )
    refused = UnverifiedRevision.one(
        error,
        reason,
        resolution,
        location=revision.id,
        commit=revision.id,
        subject=verdict.subject,
        signer=verdict.signer or None,
        key=(verdict.fingerprint or verdict.key) or None,
        verdict=letter,
    )
    refused.revision = revision
    return refused


def _listed_in(verdict: Verdict, policy: TrustedKeys) -> str:
    if verdict.ssh:
        if policy.allowed_signers is None:
            return "is not trusted: no --allowed-signers was given"
        return f"--allowed-signers {policy.allowed_signers} does not allow"
    if policy.gpg_keyring is None:
        return "is not trusted: no --gpg-keyring was given"
    return f"is not in --gpg-keyring {policy.gpg_keyring}"


def _how_to_trust(verdict: Verdict, policy: TrustedKeys) -> str:
    if verdict.ssh:
        where = policy.allowed_signers or "an --allowed-signers file"
        return f"add a line `EMAIL ssh-ed25519 AAAA...` with its public key to {where}"
    where = policy.gpg_keyring or "a --gpg-keyring file"
    return (
        f"export its public key into {where} (gpg --export --armor {verdict.key}, with the others)"
    )


def clean(text: str, limit: int = MAX_SUBJECT) -> str:
    """Text from the commit or git, safe to show: one line, no control characters, bounded."""
    flat = _CONTROL.sub(" ", " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
