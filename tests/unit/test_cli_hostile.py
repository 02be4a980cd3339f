"""The `tether` command given what an operator mistypes or an attacker tries: each ends in one
line on stderr saying what is wrong, the exit code saying whose fault it is (2: the input), no
traceback, and nothing written where it should not be."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table

from tether.cli.output import _Shown, emit
from tether.config import PolicyConfig, Settings
from tether.domains.support import PACK
from tether.errors import ConfigurationError
from tether.policystore import policy_for
from tether.text import visible


def tether(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`tether ARGS` with nothing but ``env`` set (and a data folder of its own)."""
    return subprocess.run(
        [sys.executable, "-m", "tether.cli", *args],
        env={"PATH": "/usr/bin:/bin", "TETHER_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def one_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


REAL_KEY = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        # A JSON-valued variable that is not JSON.
        ({"TETHER_POLICIES": "{bad"}, ["domains"], "TETHER_POLICIES: not valid JSON"),
        ({"TETHER_SYSTEMS": "notjson"}, ["domains"], "TETHER_SYSTEMS: not valid JSON"),
        # A store that cannot be opened, from a URL that is not one.
        (
            {"TETHER_STORE_URL": "garbage"},
            ["policy", "show", "--domain", "support"],
            "garbage: not a database URL Tether can open",
        ),
        # A data folder that is a file.
        ({"TETHER_DATA_DIR": "/etc/hostname"}, ["domains"], "TETHER_DATA_DIR: Value error, not"),
        # The pack a newcomer's `tether new-domain` printed, without its PYTHONPATH.
        ({"TETHER_DOMAINS": '["mypack:PACK"]'}, ["domains"], "is the folder holding it on"),
        ({"TETHER_DOMAINS": '["nope"]'}, ["domains"], "no domain pack 'nope'"),
        # An address that is not one, and TLS files that are not there.
        ({"TETHER_TEMPORAL_ADDRESS": ""}, ["approvals", "list"], "TETHER_TEMPORAL_ADDRESS '':"),
        (
            {"TETHER_TEMPORAL_TLS__SERVER_CA": "/no/such/ca.pem"},
            ["approvals", "list"],
            "TETHER_TEMPORAL_TLS__SERVER_CA: [Errno 2]",
        ),
        ({"TETHER_LOG_LEVEL": "bogus"}, ["worker"], "TETHER_LOG_LEVEL 'BOGUS': one of"),
        # A store URL whose port is not a number.
        (
            {"TETHER_STORE_URL": "postgresql+psycopg://u:s3cr3t@db:notaport/tether"},
            ["db", "current"],
            "postgresql+psycopg://u:***@db:notaport/tether: not a database URL",
        ),
    ],
)
def test_a_setting_no_command_can_use_is_one_line(
    tmp_path: Path, env: dict[str, str], args: list[str], said: str
) -> None:
    assert said in one_line(tether(tmp_path, *args, **env))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://tether@127.0.0.1:1/tether?password=s3cr3tpw",  # psycopg's form
        "postgresql+psycopg://tether:p@ss-s3cr3t@127.0.0.1:1/tether",  # an "@" not encoded
    ],
)
def test_a_store_that_cannot_be_reached_never_shows_its_password(tmp_path: Path, url: str) -> None:
    done = tether(tmp_path, "db", "current", "--json", TETHER_STORE_URL=url)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout, done.stderr


@pytest.mark.parametrize(
    "env",
    [
        # A group's check fails: the group (and a secret in it) is not repeated.
        {"TETHER_ENCRYPTION__KEYS": json.dumps({"k1": REAL_KEY, "k2": "short"})},
        {
            "TETHER_LLM__API_KEY": "sk-live-s3cr3t-1234567890",
            "TETHER_LLM__PROVIDER": "openai",
            "TETHER_LLM__READ_TIMEOUT": "59",
        },
        {"TETHER_CONSOLE__TOKENS": '{"tok-s3cr3t-abc": "alice"}', "TETHER_CONSOLE__PROCESSES": "2"},
    ],
)
def test_a_settings_error_never_repeats_a_secret(tmp_path: Path, env: dict[str, str]) -> None:
    line = one_line(tether(tmp_path, "domains", **env))
    for secret in (REAL_KEY[:12], "s3cr3t"):
        assert secret not in line, line
    assert not line.startswith("TETHER_:"), line  # a whole-settings check is named as such


def test_a_policy_setting_misspelt_is_refused_not_dropped(tmp_path: Path) -> None:
    """Dropped, `min_groundig: 0.99` would leave the threshold where it was, silently."""
    with pytest.raises(ValueError, match="min_groundig"):
        PACK.policy.merged({"min_groundig": 0.99})
    # Through TETHER_POLICIES: the setting's name, not a tuple of it.
    with pytest.raises(ConfigurationError) as caught:
        policy_for(PACK, Settings(policies={"support": {"min_groundig": 0.99}}))
    assert caught.value.problems == [
        "policy of support: min_groundig: Extra inputs are not permitted"
    ]
    typo = tmp_path / "typo.yaml"
    typo.write_text("version: typo1\nmin_groundig: 0.99\n")
    refused = tether(tmp_path, "policy", "add", str(typo), "--domain", "support")
    assert refused.returncode == 2 and "min_groundig" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    # What is pinned and recorded still reads back: every field it writes is one it knows.
    assert PolicyConfig.model_validate(PACK.policy.model_dump(mode="json")) == PACK.policy


@pytest.mark.parametrize("name", ["../../etc/evil", "a/b", "", "x\x1b[31m"])
def test_a_key_file_is_named_after_an_approver_never_a_path(tmp_path: Path, name: str) -> None:
    keyring = tmp_path / "ring" / "keys"
    keyring.mkdir(parents=True)
    line = one_line(tether(tmp_path, "keys", "new", name, "--keyring", str(keyring)))
    assert "is not an approver id" in line and "\x1b" not in line
    assert [p for p in tmp_path.rglob("*.key")] == []


def test_a_key_file_goes_in_a_folder_that_is_there(tmp_path: Path) -> None:
    """A mistyped --out folder is refused, not made (a keyring folder is made, and named so)."""
    meant = tmp_path / "nonexistent" / "dir" / "bob.key"
    line = one_line(tether(tmp_path, "keys", "new", "bob", "--out", str(meant)))
    assert line == f"--out {meant}: there is no folder {meant.parent}"
    assert not (tmp_path / "nonexistent").exists()
    ring = tmp_path / "ring"
    assert tether(tmp_path, "keys", "new", "bob", "--keyring", str(ring)).returncode == 0
    assert [p.name for p in ring.iterdir()] != []


def test_json_output_stays_json_and_text_stays_text(capsys: pytest.CaptureFixture[str]) -> None:
    """A metric's +Inf is null on stdout (JSON has no word for it); an emoji code is text."""
    emit({"per_s": float("inf"), "rows": [float("nan"), 1.5], "version": "hotfix:fire:2"})
    printed = capsys.readouterr().out
    assert json.loads(printed) == {"per_s": None, "rows": [None, 1.5], "version": "hotfix:fire:2"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # Checked before connecting: the input's fault whether or not a server is up.
        (["eval", "run", "--sample-rate", "1.5"], "sample_rate"),
        (["eval", "run", "--since-hours", "nan"], "--since-hours: a number above 0"),
        (["eval", "run", "--every", "²m"], "expected a number"),  # "²".isdigit() is true
        (["eval", "run", "--every", "99999999999999d"], "at most 3650 days"),
        (["report", "--days", "inf"], "--days: a number above 0"),
        (["report", "--out", "/no/such/folder/r.html"], "--out /no/such/folder/r.html: "),
        (["drift", "--window-hours", "99999999999"], "--window-hours: a number above 0"),
        (["calibrate", "--target-precision", "0.9", "--days", "nan"], "--days: a number above"),
        (["capacity", "--metrics", "127.0.0.1:1", "--target", "inf"], "--target: a number"),
        # An overlay on a pack not served, or an intent it has not, protects nothing.
        (["overlay", "set", "--domain", "nosuch", "--by", "me", "--reason", "x"], "not a pack"),
        (
            [
                "overlay",
                "set",
                "--domain",
                "support",
                "--intent",
                "nosuch",
                "--by",
                "me",
                "--reason",
                "x",
            ],
            "--intent: 'nosuch' is not one of support's",
        ),
        # A candidate whose queue came from an unset variable changes nothing.
        (
            [
                "candidate",
                "start",
                "c1",
                "--domain",
                "support",
                "--share",
                "0.5",
                "--model-queue",
                "",
            ],
            "--model-queue: empty",
        ),
        (
            [
                "policy",
                "activate",
                "v1",
                "--domain",
                "support",
                "--reason",
                "x",
                "--by",
                "e\x1b[31mRED",
            ],
            "--by: control or invisible characters",
        ),
        (["new-domain", "abcqq", "--into", "/etc/hostname/sub"], "--into /etc/hostname/sub: "),
        (["ask", "hello", "--subject", "C-100", "--request-id", " "], "--request-id: empty"),
        (["approvals", "list", "--limit", "5", "--after", "\u00e9"], "--after: not a token"),
    ],
)
def test_an_option_out_of_its_range_is_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    env = {"TETHER_DOMAINS": '["support"]'}
    assert said in one_line(tether(tmp_path, *args, **env))


def test_files_and_names_an_operator_hands_over(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.yaml"
    utf16.write_text("version: v9\nmin_grounding: 0.9\n", encoding="utf-16")  # PowerShell's >
    line = one_line(tether(tmp_path, "policy", "add", str(utf16), "--domain", "support"))
    assert line == f"{utf16}: not UTF-8 text"
    hidden = tmp_path / "hidden.yaml"
    hidden.write_text('version: "v\\u202e9"\n')  # a right-to-left override in the name
    line = one_line(tether(tmp_path, "policy", "add", str(hidden), "--domain", "support"))
    assert "no control or invisible characters" in line
    odd = tmp_path / "odd.yaml"
    odd.write_text('version: "v9; touch pwned"\n')
    added = tether(tmp_path, "policy", "add", str(odd), "--domain", "support")
    assert added.returncode == 0, added.stderr
    assert "activate: tether policy activate 'v9; touch pwned' --domain support" in added.stdout
    bomb = tmp_path / "bomb.yaml"  # nine levels of ten: a billion strings, from 400 bytes
    levels = [f'a0: &a0 ["{"x" * 8}"]'] + [
        f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 10)
    ]
    bomb.write_text("version: v9\n" + "\n".join(levels) + "\n")
    line = one_line(tether(tmp_path, "policy", "add", str(bomb), "--domain", "support"))
    assert line.startswith(f"{bomb}: aliases are not read here")
    fifo = tmp_path / "policy.fifo"
    os.mkfifo(fifo)  # nobody writes to it: reading would wait forever
    line = one_line(tether(tmp_path, "policy", "add", str(fifo), "--domain", "support"))
    assert line == f"{fifo}: not a regular file"
    huge = tmp_path / "huge.yaml"
    huge.write_text("version: v9\n" + "#" * 2_000_000 + "\n")
    line = one_line(tether(tmp_path, "policy", "add", str(huge), "--domain", "support"))
    assert line == f"{huge}: larger than 1,000,000 bytes"
    key = ["approvals", "approve", "r-1", "--as", "lead@northwind.example", "--key"]
    nested = tmp_path / "nested.key"
    nested.write_text("[" * 50_000)
    assert "not a tether key file" in one_line(tether(tmp_path, *key, str(nested)))
    line = one_line(tether(tmp_path, *key, str(fifo)))
    assert line == f"{fifo}: not a tether key file (not a regular file)"
    # TETHER_DEFAULT_DOMAIN is the domain a command means when it names none (two served).
    shown = tether(tmp_path, "policy", "show", TETHER_DEFAULT_DOMAIN="support")
    assert one_line(shown, 1) == "no support policy is active yet: a worker registers one at start"


def test_a_schema_from_a_newer_release_is_not_called_behind(tmp_path: Path) -> None:
    assert tether(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "tether.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    done = tether(tmp_path, "db", "current")
    assert done.returncode == 1
    assert "9999\tunknown to this release" in done.stdout
    assert "ahead: a newer Tether release" in done.stderr and "behind" not in done.stderr


def test_a_new_pack_is_readable_by_whoever_runs_the_workers(tmp_path: Path) -> None:
    """Not 0700 (a temporary folder's mode, kept by the rename): another user imports it."""
    made = tether(tmp_path, "new-domain", "abcqq", "--into", str(tmp_path / "packs"))
    assert made.returncode == 0, made.stderr
    mode = (tmp_path / "packs" / "abcqq").stat().st_mode & 0o777
    assert mode & 0o055 == 0o055, oct(mode)  # this suite's umask is 022 or looser


ESCAPES = (
    "\x1b[2J\x1b[31mSYSTEM OK\x1b[0m \x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \u202e"
)


def test_text_from_data_never_drives_the_terminal() -> None:
    """A passage the model quoted, an approver's edit, a ticket: shown with its escapes
    written out, in a table too; the command's own colours still reach the terminal."""
    shown = _Shown(file=io.StringIO(), force_terminal=True, color_system="standard", width=200)
    table = Table("answer")
    table.add_row(ESCAPES)
    shown.print(table)
    shown.print("approved", style="green")
    printed = shown.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[2J" not in printed and "\x1b]8" not in printed and "\u202e" not in printed
    assert "\\x1b[2J" in printed and "\\u202e" in printed
    assert "\x1b[32mapproved" in printed  # rich's own styling, untouched
    assert visible("line\n\ttab") == "line\n\ttab"


def test_json_output_escapes_what_a_terminal_would_obey(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit({"ticket": ESCAPES})
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\u202e" not in printed
    assert json.loads(printed) == {"ticket": ESCAPES}


def test_an_approval_is_checked_before_anything_connects(tmp_path: Path) -> None:
    """Another's key, a reason or an answer with an escape sequence: refused in one line
    before the command reaches for a server (there is none here)."""
    mallory = tmp_path / "mallory.key"
    assert (
        tether(tmp_path, "keys", "new", "mallory@evil.example", "--out", str(mallory)).returncode
        == 0
    )
    base = ["approvals", "approve", "r-1", "--as", "lead@northwind.example"]
    line = one_line(tether(tmp_path, *base, "--key", str(mallory)))
    assert line == f"{mallory} signs for mallory@evil.example, not lead@northwind.example"
    line = one_line(tether(tmp_path, *base, "--reason", "ok\x1b[31mred"))
    assert line == "--reason: control or invisible characters are not kept (U+001B)"
    line = one_line(
        tether(
            tmp_path,
            *["approvals", "edit", "r-1", "--as", "lead@northwind.example", "--reason", "fix"],
            *["--answer", "We refunded $150.\x1b[2J"],
        )
    )
    assert line.startswith("--answer: control or invisible characters are not sent")
    # No key given and none in a keyring: said here, with where a key comes from.
    line = one_line(tether(tmp_path, *base, "--reason", "fine"))
    assert line.startswith("no key signs for lead@northwind.example: pass --key FILE")
    assert "TETHER_KEYRING" in line


@pytest.mark.parametrize(
    ("status", "code"),
    [("UNAVAILABLE", 3), ("DEADLINE_EXCEEDED", 3), ("NOT_FOUND", 2), ("PERMISSION_DENIED", 1)],
)
def test_temporal_failing_mid_command_is_one_line_and_its_exit_code(
    status: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Temporal going away after the connection (3: try again later) is told from a request
    it does not know (2) and one it refuses (1), never a traceback."""
    import typer
    from temporalio.service import RPCError, RPCStatusCode

    from tether.cli.output import run

    async def command() -> None:
        raise RPCError("it said no", getattr(RPCStatusCode, status), b"")

    with pytest.raises(typer.Exit) as left:
        run(command())
    assert left.value.exit_code == code
    assert "it said no" in capsys.readouterr().err
