"""Signed commits only: --verify-signatures applies a revision only if Git verifies its commit.

Real keys, made for the module by `ssh-keygen` and `gpg` in temporary directories;
commits signed by git itself (`commit -S`, with gpg.format=ssh for SSH keys). Git's
own verification decides (with the system's ssh-keygen and gpg): a commit that is
unsigned, signed by a key not listed, tampered with after signing, or signed by an
expired or revoked key is refused, naming the commit, the signer and why, and
nothing of it is applied.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from daemon_support import (  # noqa: F401  (daemons_fixture, ws_fixture: pytest fixtures)
    NORTH,
    Daemons,
    GitRepo,
    Workspace,
    daemons_fixture,
    manifest_repo,
    sample,
    ws_fixture,
)
from support import isolated_env

from fleetward.cli import cli
from fleetward.daemon.config import read_config_file

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None or shutil.which("ssh-keygen") is None,
    reason="gpg and ssh-keygen are needed (.ci/run installs gnupg)",
)

CLEAN_ENV: dict[str, str | None] = {
    "FLEETWARD_VERIFY_SIGNATURES": None,
    "FLEETWARD_ALLOWED_SIGNERS": None,
    "FLEETWARD_GPG_KEYRING": None,
    "FLEETWARD_STATE_DIR": None,
    "FLEETWARD_DEBUG": None,
    "NO_COLOR": "1",
    "COLUMNS": "200",
}
TRUSTED_EMAIL = "trusted@example.com"
TRK_1001_MODEL = re.compile(r"(make: Volvo, model: )[^,]+(, year: 2022)")
# A time in the past, for a key that expired long ago (gpg's --faked-system-time).
LONG_AGO = "20200101T000000"


@dataclass(frozen=True)
class Keys:
    """The signers' keys, and the trust files fleetward is given."""

    env: dict[str, str]  # git's environment for signing: HOME, identity, GNUPGHOME
    ssh_trusted: Path
    ssh_other: Path
    allowed_signers: Path  # lists ssh_trusted only
    gpg_trusted: str  # fingerprints
    gpg_other: str
    gpg_expired: str
    gpg_revoked: str
    keyring_armored: Path  # gpg_trusted only
    keyring_binary: Path
    keyring_with_dead_keys: Path  # gpg_trusted, gpg_expired and gpg_revoked (revoked)
    gpg_long_ago: Path  # a gpg that signs as if it were LONG_AGO


def _run(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, (argv, done.stderr.decode())
    return done.stdout


def _gpg_key(env: dict[str, str], name: str, *, long_ago: bool = False) -> str:
    """A new ed25519 signing key in env's GNUPGHOME; its fingerprint."""
    email = f"{name.lower()}@example.com"
    faked = ["--faked-system-time", LONG_AGO] if long_ago else []
    expiry = "1d" if long_ago else "never"
    _run(
        ["gpg", "--batch", *faked, "--passphrase", "", "--quick-gen-key"]
        + [f"{name} <{email}>", "ed25519", "sign", expiry],
        env,
    )
    listed = _run(["gpg", "--batch", "--with-colons", "--list-keys", email], env).decode()
    return next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    root = tmp_path_factory.mktemp("keys")
    home = root / "home"
    home.mkdir()
    (home / "gitconfig").touch()
    gnupg = root / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = isolated_env(home, {"GNUPGHOME": str(gnupg)})
    for name in ("trusted", "other"):
        _run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)], env
        )
    allowed = root / "allowed_signers"
    allowed.write_text(f"{TRUSTED_EMAIL} {(root / 'trusted.pub').read_text()}")
    trusted = _gpg_key(env, "Trusted")
    other = _gpg_key(env, "Other")
    expired = _gpg_key(env, "Expired", long_ago=True)
    revoked = _gpg_key(env, "Revoked")
    armored = root / "trusted.asc"
    armored.write_bytes(_run(["gpg", "--batch", "--armor", "--export", trusted], env))
    binary = root / "trusted.gpg"
    binary.write_bytes(_run(["gpg", "--batch", "--export", trusted], env))
    # The revoked key as a keyring holds it once its owner revoked it: the revocation
    # certificate gpg made with the key, imported elsewhere (the signer can still sign).
    scratch = root / "gnupg-revoked"
    scratch.mkdir(mode=0o700)
    scratch_env = env | {"GNUPGHOME": str(scratch)}
    exported = _run(["gpg", "--batch", "--export", trusted, expired, revoked], env)
    _run(["gpg", "--batch", "--import"], scratch_env, exported)
    certificate = (gnupg / "openpgp-revocs.d" / f"{revoked}.rev").read_text()
    _run(
        ["gpg", "--batch", "--import"], scratch_env, certificate.replace(":-----", "-----").encode()
    )
    dead = root / "dead-keys.gpg"
    dead.write_bytes(_run(["gpg", "--batch", "--export", trusted, expired, revoked], scratch_env))
    long_ago = root / "gpg-long-ago"
    long_ago.write_text(f'#!/bin/sh\nexec gpg --faked-system-time {LONG_AGO} "$@"\n')
    long_ago.chmod(0o755)
    yield Keys(
        env,
        root / "trusted",
        root / "other",
        allowed,
        trusted,
        other,
        expired,
        revoked,
        armored,
        binary,
        dead,
        long_ago,
    )
    for used in (gnupg, scratch):  # the agents gpg started for the secret keys
        subprocess.run(
            ["gpgconf", "--kill", "all"], env=env | {"GNUPGHOME": str(used)}, check=False
        )


# -- committing -----------------------------------------------------------------------------------


def signing(keys: Keys, how: str) -> list[str]:
    """git's options to sign a commit as `how` says (none: unsigned)."""
    if how == "unsigned":
        return []
    kind, _, who = how.partition("-")
    if kind == "ssh":
        key = keys.ssh_trusted if who == "trusted" else keys.ssh_other
        return [
            "-c",
            "gpg.format=ssh",
            "-c",
            f"user.signingkey={key}.pub",
            "-c",
            "commit.gpgsign=true",
        ]
    fingerprint = {
        "trusted": keys.gpg_trusted,
        "other": keys.gpg_other,
        "expired": keys.gpg_expired,
        "revoked": keys.gpg_revoked,
    }[who]
    program = ["-c", f"gpg.program={keys.gpg_long_ago}"] if who == "expired" else []
    return [*program, "-c", f"user.signingkey={fingerprint}", "-c", "commit.gpgsign=true"]


def commit(repo: GitRepo, keys: Keys, message: str, how: str, model: str | None = None) -> str:
    """Commit (TRK-1001 as a `model`, or nothing) signed as `how` says; its SHA.

    One commit, so a daemon watching the repository never sees a half-made one."""
    if model is not None:
        north = repo.root / NORTH
        text, found = TRK_1001_MODEL.subn(rf"\g<1>{model}\g<2>", north.read_text())
        assert found == 1, "TRK-1001's attributes line not found"
        north.write_text(text)
        repo.git("add", "-A")
    repo.git(*signing(keys, how), "commit", "-q", "--allow-empty", "-m", message)
    return repo.head()


def signed_repo(root: Path, keys: Keys, how: str = "ssh-trusted") -> tuple[GitRepo, str]:
    """The bundled manifests, committed and signed as `how` says."""
    repo, _ = manifest_repo(root, keys.env)
    repo.git(*signing(keys, how), "commit", "-q", "--amend", "--no-edit")
    return repo, repo.head()


def tamper(repo: GitRepo, sha: str) -> str:
    """A copy of commit `sha` with another message and the same signature header."""
    raw = repo.git("cat-file", "commit", sha) + "\n"
    header, _, message = raw.partition("\n\n")
    assert "gpgsig " in header, header
    forged = f"{header}\n\n{message.rstrip()} (and more)\n"
    done = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        input=forged,
        cwd=repo.root,
        env=repo.env,
        capture_output=True,
        text=True,
        check=True,
    )
    forged_sha = done.stdout.strip()
    repo.git("update-ref", "refs/heads/main", forged_sha)
    return forged_sha


# -- running fleetward ----------------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(
        cli, list(args), catch_exceptions=False
    )


def verify(keys: Keys, ssh: bool = True, gpg: Path | None = None) -> list[str]:
    args = ["--verify-signatures"]
    if ssh:
        args += ["--allowed-signers", str(keys.allowed_signers)]
    if gpg is not None:
        args += ["--gpg-keyring", str(gpg)]
    return args


def applied_revision(state: Path) -> str | None:
    shown = run("state", "show", "--json", "--state-dir", str(state))
    assert shown.exit_code == 0, shown.output
    revision: str | None = json.loads(shown.stdout)["lastAppliedRevision"]
    return revision


def refused(result: Result, sha: str, subject: str, error: str) -> str:
    """Exit 1 and an Error / Reason / Resolution block refusing commit `sha`; stderr."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = result.stderr
    assert f"Error: Commit {sha[:7]} {subject!r} {error}" in text, text
    assert "Reason:" in text and "Resolution:" in text, text
    assert "Traceback" not in text and "Internal error" not in text, text
    return text


# -- applied ----------------------------------------------------------------------------------------


def test_a_commit_signed_by_a_trusted_ssh_key_is_applied(tmp_path: Path, keys: Keys) -> None:
    repo, sha = signed_repo(tmp_path / "repo", keys, "ssh-trusted")
    state = tmp_path / "state"
    result = run(
        "apply",
        "--auto-approve",
        "--source",
        str(repo.root),
        "--state-dir",
        str(state),
        *verify(keys),
    )
    assert result.exit_code == 0, result.output
    assert applied_revision(state) == sha


@pytest.mark.parametrize("export", ["armored", "binary"])
def test_a_commit_signed_by_a_trusted_openpgp_key_is_applied(
    tmp_path: Path, keys: Keys, export: str
) -> None:
    repo, sha = signed_repo(tmp_path / "repo", keys, "gpg-trusted")
    keyring = keys.keyring_armored if export == "armored" else keys.keyring_binary
    state = tmp_path / "state"
    result = run(
        "apply",
        "--auto-approve",
        "--source",
        str(repo.root),
        "--state-dir",
        str(state),
        *verify(keys, ssh=False, gpg=keyring),
    )
    assert result.exit_code == 0, result.output
    assert applied_revision(state) == sha


def test_with_both_lists_either_kind_of_signature_passes(tmp_path: Path, keys: Keys) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys, "ssh-trusted")
    both = verify(keys, gpg=keys.keyring_armored)
    assert run("validate", "--source", str(repo.root), *both).exit_code == 0
    commit(repo, keys, "signed with OpenPGP", "gpg-trusted")
    result = run("validate", "--source", str(repo.root), *both)
    assert result.exit_code == 0, result.output


def test_without_the_flag_nothing_is_verified(tmp_path: Path, keys: Keys) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys, "unsigned")
    assert run("validate", "--source", str(repo.root)).exit_code == 0


# -- refused ----------------------------------------------------------------------------------------

# (how the commit is signed, the keyring given, the error, what the reason must name)
REFUSALS = {
    "unsigned": ("unsigned", None, "is not signed", []),
    "untrusted-ssh-key": ("ssh-other", None, "is signed by a key that is not trusted", ["ssh"]),
    "untrusted-openpgp-key": (
        "gpg-other",
        "armored",
        "is signed by a key that is not trusted",
        ["other"],
    ),
    "openpgp-key-without-keyring": (
        "gpg-trusted",
        None,
        "is signed by a key that is not trusted",
        ["no --gpg-keyring"],
    ),
    "expired-openpgp-key": (
        "gpg-expired",
        "dead",
        "is signed with a key that has expired",
        ["expired"],
    ),
    "revoked-openpgp-key": (
        "gpg-revoked",
        "dead",
        "is signed with a key that was revoked",
        ["revoked"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_commit_not_signed_by_a_trusted_key_is_refused(
    tmp_path: Path, keys: Keys, case: str
) -> None:
    how, keyring, error, named = REFUSALS[case]
    repo, _ = signed_repo(tmp_path / "repo", keys)
    sha = commit(repo, keys, f"change {case}", how)
    gpg = {"armored": keys.keyring_armored, "dead": keys.keyring_with_dead_keys}.get(keyring or "")
    result = run("validate", "--source", str(repo.root), *verify(keys, gpg=gpg))
    text = refused(result, sha, f"change {case}", error)
    reason = text.split("Reason:", 1)[1]
    for word in named:
        if word == "ssh":
            word = _ssh_fingerprint(keys.ssh_other)
        elif word in ("other", "expired", "revoked"):
            word = getattr(keys, f"gpg_{word}")
        assert word in reason, reason


def _ssh_fingerprint(key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"SHA256:\S+", out)
    assert found is not None, out
    return found.group(0)


@pytest.mark.parametrize("how", ["ssh-trusted", "gpg-trusted"])
def test_a_tampered_signed_commit_is_refused_as_a_bad_signature(
    tmp_path: Path, keys: Keys, how: str
) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys)
    signed = commit(repo, keys, "a reviewed change", how)
    both = verify(keys, gpg=keys.keyring_armored)
    assert run("validate", "--source", str(repo.root), *both).exit_code == 0
    forged = tamper(repo, signed)
    result = run("validate", "--source", str(repo.root), *both)
    text = refused(result, forged, "a reviewed change (and more)", "has a bad signature")
    assert "changed after it was signed" in text


def test_a_refused_revision_leaves_the_store_at_the_last_good_one(
    tmp_path: Path, keys: Keys
) -> None:
    repo, good = signed_repo(tmp_path / "repo", keys)
    state = tmp_path / "state"
    args = ["--source", str(repo.root), "--state-dir", str(state), *verify(keys)]
    assert run("apply", "--auto-approve", *args).exit_code == 0
    before = (state / "state.json").read_bytes()
    bad = commit(repo, keys, "TRK-1001 is an FH16 Aero", "ssh-other", model="FH16 Aero")

    result = run("apply", "--auto-approve", "--json", *args)
    assert result.exit_code == 1, result.output
    [problem] = json.loads(result.stdout)["errors"]
    assert problem["error"] == (
        f"Commit {bad[:7]} 'TRK-1001 is an FH16 Aero' is signed by a key that is not trusted"
    )
    assert problem["location"] == bad
    assert problem["parameters"]["commit"] == bad
    assert problem["parameters"]["key"] == _ssh_fingerprint(keys.ssh_other)
    assert problem["parameters"]["verdict"] == "U"
    assert (state / "state.json").read_bytes() == before
    assert applied_revision(state) == good

    plan = run("plan", *args)
    assert plan.exit_code == 1 and "not trusted" in plan.stderr, plan.output


def test_a_remote_source_is_verified_at_the_commit_it_fetched(tmp_path: Path, keys: Keys) -> None:
    work, good = signed_repo(tmp_path / "work", keys)
    remote = GitRepo(tmp_path / "remote.git", keys.env, bare=True)
    work.git("push", "-q", str(remote.root), "main")
    state = tmp_path / "state"
    args = ["--source", remote.url, "--state-dir", str(state), *verify(keys)]
    assert run("apply", "--auto-approve", *args).exit_code == 0
    assert applied_revision(state) == good

    unsigned = commit(work, keys, "pushed unsigned", "unsigned", model="FH16 Aero")
    work.git("push", "-q", str(remote.root), "main")
    refused(run("apply", "--auto-approve", *args), unsigned, "pushed unsigned", "is not signed")
    assert applied_revision(state) == good


def test_the_options_read_their_variables(tmp_path: Path, keys: Keys) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys, "unsigned")
    sha = repo.head()
    env = {
        "FLEETWARD_VERIFY_SIGNATURES": "1",
        "FLEETWARD_ALLOWED_SIGNERS": str(keys.allowed_signers),
    }
    result = run("validate", "--source", str(repo.root), env=env)
    refused(result, sha, "bundled manifests", "is not signed")


def test_the_daemon_reads_the_options_from_its_config_file(tmp_path: Path, keys: Keys) -> None:
    config = tmp_path / "fleetward.yaml"
    config.write_text(
        "verify-signatures: true\n"
        f"allowed-signers: {keys.allowed_signers}\n"
        f"gpg-keyring: {keys.keyring_armored}\n"
    )
    assert read_config_file(str(config)) == {
        "verify_signatures": True,
        "allowed_signers": str(keys.allowed_signers),
        "gpg_keyring": str(keys.keyring_armored),
    }


# -- options that cannot work ----------------------------------------------------------------------


def test_a_daemon_told_to_verify_without_keys_exits_1_at_start(tmp_path: Path, keys: Keys) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys)
    result = run(
        "daemon",
        "--once",
        "--source",
        str(repo.root),
        "--state-dir",
        str(tmp_path / "state"),
        "--verify-signatures",
    )
    assert result.exit_code == 1, result.output
    assert "Error: --verify-signatures needs --allowed-signers or --gpg-keyring" in result.stderr


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("no-key-file", "--verify-signatures needs --allowed-signers or --gpg-keyring"),
        ("key-file-without-flag", "--allowed-signers given without --verify-signatures"),
        ("no-git", "--verify-signatures cannot verify a plain directory"),
        ("not-a-repository", "--verify-signatures cannot verify a plain directory"),
        ("missing-file", "Cannot read --allowed-signers"),
        ("not-a-keyring", "gpg cannot read --gpg-keyring"),
    ],
)
def test_signature_options_that_cannot_work_are_a_usage_error(
    tmp_path: Path, keys: Keys, case: str, error: str
) -> None:
    repo, _ = signed_repo(tmp_path / "repo", keys)
    source = ["--source", str(repo.root)]
    args = {
        "no-key-file": [*source, "--verify-signatures"],
        "key-file-without-flag": [*source, "--allowed-signers", str(keys.allowed_signers)],
        "no-git": [*source, "--no-git", *verify(keys)],
        "not-a-repository": ["--source", str(_plain_copy(repo, tmp_path)), *verify(keys)],
        "missing-file": [*source, "--verify-signatures", "--allowed-signers", "no-such-file"],
        "not-a-keyring": [*source, *verify(keys, ssh=False, gpg=keys.allowed_signers)],
    }[case]
    result = run("validate", *args)
    assert result.exit_code == 1, result.output
    assert f"Error: {error}" in result.stderr, result.stderr
    assert "Traceback" not in result.output


def _plain_copy(repo: GitRepo, tmp_path: Path) -> Path:
    plain = tmp_path / "plain"
    shutil.copytree(repo.root / "manifests", plain / "manifests")
    return plain


def test_the_users_own_keyring_and_git_config_vouch_for_nothing(tmp_path: Path, keys: Keys) -> None:
    """The signer's GNUPGHOME (which holds every key, trusted ultimately) and a global
    allowed-signers file listing the untrusted key are both ignored."""
    repo, _ = signed_repo(tmp_path / "repo", keys)
    sha = commit(repo, keys, "signed by the other key", "gpg-other")
    gitconfig = tmp_path / "gitconfig"
    listed = tmp_path / "everyone"
    listed.write_text(f"x@example.com {(keys.ssh_other.with_suffix('.pub')).read_text()}")
    gitconfig.write_text(f'[gpg "ssh"]\n\tallowedSignersFile = {listed}\n')
    env = {"GNUPGHOME": keys.env["GNUPGHOME"], "GIT_CONFIG_GLOBAL": str(gitconfig)}
    result = run("validate", "--source", str(repo.root), *verify(keys), env=env)
    refused(result, sha, "signed by the other key", "is signed by a key that is not trusted")
    ssh = commit(repo, keys, "signed by the other SSH key", "ssh-other")
    result = run(
        "validate",
        "--source",
        str(repo.root),
        *verify(keys, ssh=False, gpg=keys.keyring_armored),
        env=env,
    )
    refused(result, ssh, "signed by the other SSH key", "is signed by a key that is not trusted")
    assert os.environ.get("GNUPGHOME") != keys.env["GNUPGHOME"]  # CliRunner put it back


# -- the daemon -------------------------------------------------------------------------------------

TOKEN = "token-for-signature-tests"


def test_the_daemon_refuses_an_unsigned_commit_and_keeps_the_last_good_revision(
    ws: Workspace, daemons: Daemons, keys: Keys
) -> None:
    repo, good = signed_repo(ws.path("work"), keys)
    state = ws.path("state")
    daemon = daemons.start(
        repo.root, state, *verify(keys), api_token=TOKEN, env={"GNUPGHOME": keys.env["GNUPGHOME"]}
    )
    daemon.wait_applied(good, timeout=60)
    assert daemon.summary()["source"]["verifySignatures"] is True
    assert sample(daemon.metrics(), "fleetward_unverified_revisions_total") == 0
    store_before = (state / "state.json").read_bytes()

    # The watch sees the commit at once (the poll is a minute away).
    bad = commit(repo, keys, "TRK-1001 is an FH16 Aero", "unsigned", model="FH16 Aero")
    summary = daemon.wait_summary(
        lambda s: s["source"]["revisionSeen"] == bad and s["lastOperation"]["state"] == "FAILURE",
        timeout=60,
        what="the unsigned revision to be refused",
    )
    assert summary["applied"]["revision"] == good  # the last good revision stays in force
    assert summary["source"]["fetchOk"] is True
    [error] = summary["errors"]
    assert error["error"] == f"Commit {bad[:7]} 'TRK-1001 is an FH16 Aero' is not signed"
    assert summary["ready"] is False
    assert (state / "state.json").read_bytes() == store_before
    ready = daemon.get("/readyz")
    assert ready.status == 503
    assert any(f"revision {bad[:7]} is refused" in r for r in ready.json()["reasons"]), ready.text
    assert daemon.get("/healthz").status == 200  # alive, only not ready
    assert sample(daemon.metrics(), "fleetward_unverified_revisions_total") == 1

    # An operator's run reads the same commit and refuses it again: still one revision.
    reply = daemon.request_run(TOKEN)
    assert reply.status in (200, 201, 202), reply.text
    op = daemon.wait_operation(reply.json()["content"]["operation_id"], timeout=60)
    assert op["state"] == "FAILURE", op
    metrics = daemon.metrics()
    assert sample(metrics, "fleetward_unverified_revisions_total") == 1
    assert sample(metrics, "fleetward_reconcile_total", result="failure") == 2

    # A signed commit vouches for its whole tree: the change above is applied with it.
    signed = commit(repo, keys, "reviewed: TRK-1001 is an FH16 Aero", "ssh-trusted")
    summary = daemon.wait_applied(signed, timeout=60)
    assert summary["errors"] == [] and summary["ready"] is True
    assert daemon.get("/readyz").status == 200
    shown = ws.fleetward("state", "show", "--json", "--state-dir", str(state))
    objects = {o["key"]: o for o in json.loads(shown.stdout)["objects"]}
    assert objects["Asset/TRK-1001"]["spec"]["attributes"]["model"] == "FH16 Aero"
    assert sample(daemon.metrics(), "fleetward_unverified_revisions_total") == 1
    daemon.alive()


def test_an_ssh_key_past_its_valid_before_date_is_refused_saying_so(
    tmp_path: Path, keys: Keys
) -> None:
    repo, sha = signed_repo(tmp_path / "repo", keys, "ssh-trusted")
    expired = tmp_path / "allowed_signers"
    public = (keys.ssh_trusted.with_suffix(".pub")).read_text()
    expired.write_text(f'{TRUSTED_EMAIL} valid-before="20200101" {public}')
    args = ["--verify-signatures", "--allowed-signers", str(expired)]
    text = refused(
        run("validate", "--source", str(repo.root), *args),
        sha,
        "bundled manifests",
        "is signed by a key that is not trusted",
    )
    assert "key has expired" in text, text  # ssh-keygen's own words, through git


# -- replace refs -----------------------------------------------------------------------------------
# `git replace OLD NEW` makes git hand out NEW wherever OLD is looked up. A signature covers
# the commit's own objects: fleetward verifies and reads those, whatever replace refs the
# repository holds and whatever the caller's environment or the repository's config say.

# How replace refs are asked for: git's default (on), the caller's GIT_NO_REPLACE_OBJECTS
# (which the check must not drop while the readers keep it), and that variable beside a
# repository whose config turns them back on (core.useReplaceRefs wins over the variable).
REPLACE_SETTINGS = ["default", "variable", "variable-and-config"]
EVIL_MODEL = "FH16 Evil"


def _replace_setting(repo: GitRepo, setting: str) -> dict[str, str]:
    """Set the repository up as `setting` says; the caller's environment for fleetward."""
    if setting == "variable-and-config":
        repo.git("config", "core.useReplaceRefs", "true")
    return {} if setting == "default" else {"GIT_NO_REPLACE_OBJECTS": "1"}


def _asset_model(state: Path) -> str:
    shown = run("state", "show", "--json", "--state-dir", str(state))
    assert shown.exit_code == 0, shown.output
    objects = {o["key"]: o for o in json.loads(shown.stdout)["objects"]}
    model: str = objects["Asset/TRK-1001"]["spec"]["attributes"]["model"]
    return model


def _unsigned_tree(repo: GitRepo, model: str) -> str:
    """A tree like HEAD's with TRK-1001 as a `model`, written without any commit."""
    north = repo.root / NORTH
    text, found = TRK_1001_MODEL.subn(rf"\g<1>{model}\g<2>", north.read_text())
    assert found == 1, "TRK-1001's attributes line not found"
    north.write_text(text)
    repo.git("add", "-A")
    tree = repo.git("write-tree")
    repo.git("reset", "-q", "--hard")
    return tree


@pytest.mark.parametrize("setting", REPLACE_SETTINGS)
def test_a_replaced_tree_of_a_signed_commit_is_not_what_is_applied(
    tmp_path: Path, keys: Keys, setting: str
) -> None:
    repo, signed = signed_repo(tmp_path / "repo", keys)
    evil = _unsigned_tree(repo, EVIL_MODEL)
    repo.git("replace", repo.git("rev-parse", f"{signed}^{{tree}}"), evil)
    env = _replace_setting(repo, setting)
    state = tmp_path / "state"
    args = ["--source", str(repo.root), "--state-dir", str(state), *verify(keys)]
    result = run("apply", "--auto-approve", *args, env=env)
    assert result.exit_code == 0, result.output
    assert applied_revision(state) == signed
    assert _asset_model(state) == "FH16"
    assert EVIL_MODEL not in (state / "state.json").read_text()


@pytest.mark.parametrize("setting", REPLACE_SETTINGS)
def test_an_unsigned_commit_replaced_by_a_signed_one_is_refused(
    tmp_path: Path, keys: Keys, setting: str
) -> None:
    repo, signed = signed_repo(tmp_path / "repo", keys)
    unsigned = commit(repo, keys, "unreviewed", "unsigned", model=EVIL_MODEL)
    repo.git("replace", unsigned, signed)
    env = _replace_setting(repo, setting)
    state = tmp_path / "state"
    args = ["--source", str(repo.root), "--state-dir", str(state), *verify(keys)]
    refused(run("apply", "--auto-approve", *args, env=env), unsigned, "unreviewed", "is not signed")
    assert not (state / "state.json").exists()
