"""Signed commits only (`--verify-signatures`): Git's own verdict on a revision's signature.

Git verifies, with the system's `ssh-keygen` (SSH signatures) and `gpg` (OpenPGP), as
`git log --format=%G?` and `git verify-commit` do; fleetward only reads the verdict.
The trusted keys are the files given, and nothing else: `gpg.ssh.allowedSignersFile`
is the --allowed-signers file (an empty list without one), and `GNUPGHOME` is a
private temporary directory into which the --gpg-keyring is imported, each key marked
trusted — the user's own keyring and git configuration never vouch for a commit.
Git picks the check by the signature itself, so SSH and OpenPGP commits mix freely.

A commit passes only on `G` (a good signature by a trusted key); every other verdict
refuses the revision with an `UnverifiedRevision` naming the commit, the signer if
one is known, and why.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetward.errors import SourceError, UsageError, os_error
from fleetward.model import Revision
from fleetward.source.git_commands import clean_git_message, dubious_repository, is_dubious
from fleetward.source.git_process import GitFailure, locked_env, run_git_process
from fleetward.source.signature_refusals import MAX_SUBJECT, Verdict, clean, refusal

logger = logging.getLogger(__name__)

SIGNATURE_TIMEOUT = 120.0  # seconds per git or gpg command (a whole check takes ~0.1 s)
_MAX_DETAIL = 600
# The empty allowed-signers list when only a keyring is given: every SSH key is unknown.
_NO_SIGNERS = os.devnull
_GOOD = "G"  # git's verdict for a good signature by a trusted key
# git's verdict (%G?, git-log(1) "PRETTY FORMATS"), key, signer, fingerprint; the subject.
_FORMAT = "%G?%x00%GK%x00%GS%x00%GF%x00%s"
_README = "see the README's 'Signed commits only'"


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """The keys a commit must be signed by: an allowed-signers file, a keyring, or both.

    Paths are absolute (git runs in the repository's directory). Built by
    `signature_policy`, which checks that the files can be read.
    """

    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None

    def describe(self) -> str:
        """The trusted key files, as the errors name them."""
        given = [
            f"{flag} {path}"
            for flag, path in (
                ("--allowed-signers", self.allowed_signers),
                ("--gpg-keyring", self.gpg_keyring),
            )
            if path is not None
        ]
        return " and ".join(given)


@dataclass(frozen=True, slots=True)
class Signature:
    """A good signature by a trusted key: who signed (principal or user id) and the key."""

    signer: str
    key: str


def signature_policy(
    verify: bool, allowed_signers: str | None, gpg_keyring: str | None, *, no_git: bool = False
) -> SignaturePolicy | None:
    """The policy the options ask for (None: no verification), or a `UsageError`.

    --verify-signatures needs at least one list of trusted keys; a list without
    --verify-signatures is refused too, rather than silently verifying nothing.
    """
    given = [
        flag
        for flag, value in (("--allowed-signers", allowed_signers), ("--gpg-keyring", gpg_keyring))
        if value
    ]
    if not verify:
        if given:
            raise UsageError.one(
                f"{' and '.join(given)} given without --verify-signatures",
                "A list of trusted keys does nothing unless signatures are verified, and "
                "applying unverified revisions while one is given would look safe and not be.",
                "Add --verify-signatures (FLEETWARD_VERIFY_SIGNATURES=1, or "
                f"verify-signatures: true in the daemon's config), or drop {given[0]}.",
            )
        return None
    if not given:
        raise UsageError.one(
            "--verify-signatures needs --allowed-signers or --gpg-keyring",
            "Signatures are checked against the keys those files list; with neither, no "
            "key is trusted and every revision would be refused.",
            "Pass --allowed-signers FILE (SSH keys, in Git's allowed-signers format) and/or "
            f"--gpg-keyring FILE (exported OpenPGP public keys); {_README}.",
        )
    if no_git:
        raise not_verifiable("--no-git reads the directory as it is on disk")
    return SignaturePolicy(
        _readable(allowed_signers, "--allowed-signers") if allowed_signers else None,
        _readable(gpg_keyring, "--gpg-keyring") if gpg_keyring else None,
    )


def not_verifiable(why: str) -> UsageError:
    """--verify-signatures asked of a source that has no commits to verify."""
    return UsageError.one(
        "--verify-signatures cannot verify a plain directory",
        f"{why}: there is no commit, so there is no signature to check.",
        "Point --source at a Git repository (a local clone or its URL), or drop "
        "--verify-signatures (a plain directory is for development only).",
    )


def _readable(path: str, flag: str) -> Path:
    """`path`, absolute, once it is known to be a readable file."""
    found = Path(path).absolute()
    try:
        with found.open("rb"):
            pass
    except OSError as exc:
        raise os_error(
            exc,
            UsageError,
            f"Cannot read {flag} {path}",
            f"Point {flag} at a readable file; {_README}.",
            path,
        ) from None
    if not found.is_file():
        raise UsageError.one(
            f"{flag} {path} is not a file",
            f"{flag} names one file of trusted keys.",
            f"Point {flag} at the file itself; {_README}.",
            location=path,
        )
    return found


def verify_commit(repo_dir: str, commit: str, ref: str, policy: SignaturePolicy) -> Signature:
    """Git's verdict on `commit`'s signature in the repository at `repo_dir`.

    Returns the trusted signature, or raises `UnverifiedRevision` (the revision is
    `commit`, shown as `ref`), `UsageError` (the keyring cannot be imported) or
    `SourceError` (git itself failed).
    """
    with _gnupg_home(policy) as home:
        fields = _git(
            repo_dir, home, policy, "log", "-1", "--no-walk", f"--format={_FORMAT}", commit
        )
        verdict, key, signer, fingerprint, subject = (fields.split("\0") + [""] * 5)[:5]
        verdict = verdict.strip()
        if verdict == _GOOD:
            logger.debug("commit %s is signed by %s (%s)", commit[:12], signer, key)
            return Signature(signer, fingerprint or key)
        # git's own words on why (ssh-keygen's "key has expired", gpg's "BAD signature").
        said = "" if verdict == "N" else _verify_said(repo_dir, home, policy, commit)
    raise refusal(
        Revision(id=commit, kind="git", ref=ref),
        Verdict(verdict, key, fingerprint, clean(signer), clean(subject, MAX_SUBJECT), said),
        policy,
    )


# -- running git and gpg ---------------------------------------------------------------


def _git(repo_dir: str, home: Path, policy: SignaturePolicy, command: str, *args: str) -> str:
    """`git COMMAND ARGS` in `repo_dir` with the policy's trust and no one else's; its stdout."""
    try:
        return run_git_process(
            _git_argv(repo_dir, policy, command, *args), _env(home), SIGNATURE_TIMEOUT
        )
    except GitFailure as failure:
        if is_dubious(failure.said):
            raise dubious_repository(None, failure.said, repo_dir) from None
        raise SourceError.one(
            f"Git could not check the signature of a commit in {repo_dir}",
            f"git {failure.command} failed: {failure.said or 'no message'}",
            "Check that git, ssh-keygen and gpg are installed and that the repository is "
            f"intact (git fsck in {repo_dir}).",
            location=repo_dir,
        ) from None


def _git_argv(repo_dir: str, policy: SignaturePolicy, command: str, *args: str) -> list[str]:
    """git's command line: the system's gpg and ssh-keygen, our allowed signers; the last
    of `args` is the commit."""
    signers = str(policy.allowed_signers) if policy.allowed_signers else _NO_SIGNERS
    config = (
        # Command-line configuration wins over every file and variable of the caller.
        *("-c", f"gpg.ssh.allowedSignersFile={signers}"),
        *("-c", "gpg.program=gpg"),
        *("-c", "gpg.openpgp.program=gpg"),
        *("-c", "gpg.x509.program=gpgsm"),
        *("-c", "gpg.ssh.program=ssh-keygen"),
        # Every key of the keyring is trusted (ownertrust, below): no level to lower.
        *("-c", "gpg.minTrustLevel=undefined"),
        *("-c", "log.showSignature=false"),
    )
    return ["git", *config, "-C", repo_dir, command, *args[:-1], "--end-of-options", args[-1]]


def _env(home: Path) -> dict[str, str]:
    return locked_env() | {"GNUPGHOME": str(home)}


# ssh-keygen's lines that say nothing about why a key is refused ("Good" is only the
# cryptographic check, before the allowed signers are consulted).
_UNHELPFUL = re.compile(r'^(Good "git" signature|No principal matched)')


def _verify_said(repo_dir: str, home: Path, policy: SignaturePolicy, commit: str) -> str:
    """What `git verify-commit` says of a refused commit (it exits 1 for one: expected)."""
    argv = _git_argv(repo_dir, policy, "verify-commit", commit)
    try:
        run_git_process(argv, _env(home), SIGNATURE_TIMEOUT)
    except GitFailure as failure:
        lines = [line for line in failure.raw.splitlines() if not _UNHELPFUL.match(line.strip())]
        return clean(clean_git_message("\n".join(lines)), _MAX_DETAIL)
    return ""


@contextmanager
def _gnupg_home(policy: SignaturePolicy) -> Iterator[Path]:
    """A private GNUPGHOME holding exactly the --gpg-keyring's keys, each trusted; removed
    after. Without a keyring it is empty: an OpenPGP signature then has no trusted key."""
    home = Path(tempfile.mkdtemp(prefix="fleetward-gnupg-"))  # mode 0700
    try:
        # gpg starts no agent in it (nothing here needs a secret key): nothing outlives us.
        (home / "gpg.conf").write_text("no-autostart\n", encoding="utf-8")
        if policy.gpg_keyring is not None:
            _import_keyring(home, policy.gpg_keyring)
        yield home
    except OSError as exc:
        raise os_error(
            exc,
            SourceError,
            "Cannot prepare a temporary GnuPG home to verify signatures",
            "Make the temporary directory (TMPDIR) writable, then run again.",
            home,
        ) from None
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _import_keyring(home: Path, keyring: Path) -> None:
    """Import `keyring` (binary or armored) into `home` and mark each key trusted."""
    out = _gpg(home, keyring, "import", "--status-fd", "1", "--import", str(keyring))
    imported = sorted(
        {line.split()[3] for line in out.splitlines() if line.startswith("[GNUPG:] IMPORT_OK ")}
    )
    if not imported:
        raise UsageError.one(
            f"--gpg-keyring {keyring} holds no OpenPGP public key",
            "gpg imported no key from it.",
            "Export the signers' public keys into it: gpg --export --armor KEYID... > "
            f"{keyring}; {_README}.",
            location=str(keyring),
        )
    # The keyring is the list of trusted keys: ultimate ownertrust makes their
    # signatures fully valid, so git's verdict is G (not U, "validity unknown").
    trust = "".join(f"{fingerprint}:6:\n" for fingerprint in imported)
    _gpg(home, keyring, "trust", "--import-ownertrust", stdin=trust)


def _gpg(home: Path, keyring: Path, step: str, *args: str, stdin: str = "") -> str:
    """Run the system's gpg in `home` for `step` of reading the keyring; its stdout, or
    a `UsageError` naming the keyring. An import that took some keys is a success (gpg
    fails it for any key it skips, such as a secret key, which nothing here needs)."""
    argv = ["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(home), *args]
    try:
        done = subprocess.run(
            argv,
            input=stdin.encode(),
            capture_output=True,
            env=_env(home),
            timeout=SIGNATURE_TIMEOUT,
            check=False,
        )
    except OSError as exc:
        raise os_error(
            exc,
            UsageError,
            "The gpg command cannot be run",
            "Install GnuPG (the Debian package `gnupg`) so that gpg is on PATH, or drop "
            "--gpg-keyring and verify SSH signatures only.",
            consequence="--gpg-keyring is read with the system's gpg.",
        ) from None
    except subprocess.TimeoutExpired:
        raise UsageError.one(
            f"gpg did not finish importing --gpg-keyring {keyring}",
            f"gpg ran for more than {SIGNATURE_TIMEOUT:g} s.",
            "Check the keyring file (gpg --show-keys FILE) and that gpg runs on this machine.",
            location=str(keyring),
        ) from None
    said = clean_git_message(done.stderr.decode("utf-8", "replace"))
    if done.returncode != 0 and "IMPORT_OK" not in done.stdout.decode("utf-8", "replace"):
        raise UsageError.one(
            f"gpg cannot read --gpg-keyring {keyring}",
            f"gpg failed to {step} its keys: {said or 'no message'}",
            "Export the signers' public keys into it: gpg --export --armor KEYID... > "
            f"{keyring}; {_README}.",
            location=str(keyring),
        )
    return done.stdout.decode("utf-8", "replace")
