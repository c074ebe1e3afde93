"""ttrd.config with real files: what the file system can do to `load_settings`, and paths relative to it.

Everything the text of a configuration can hold is checked in memory, in tests/unit/test_config.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_config import FULL, MINIMAL, assert_names
from ttrd.config import load_settings, settings_from_text
from ttrd.errors import ConfigError
from ttrd.views import describe


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ttrd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def failure(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return caught.value


@pytest.mark.parametrize("name", ["basic", "shuffled", "twisted"])
def test_shared_scenario_configs_load(shared: Path, name: str) -> None:
    path = shared / "scenarios" / name / "config.toml"
    directory = load_settings(path).directory
    assert {"support", "sales", "billing"} <= {mailbox.id for mailbox in directory.mailboxes}
    assert set(directory.schedules) == {"default", "us"}
    support = directory.resolve("help@example.com")
    assert support is not None and support.id == "support"
    assert [sla.seconds for sla in support.sla] == [3600.0, 14400.0]


# --- the file itself ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert_names(failure(path), path, None, "no such file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert_names(failure(tmp_path), tmp_path, None, "is a directory")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)

    def refuse(self: Path) -> bytes:
        # chmod 0 cannot stop root, who may run these tests in a container.
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert_names(failure(path), path, None, "permission denied")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    assert_names(failure(path), path, None, "not UTF-8")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_settings(path).directory.organization.domains == ("example.com",)


def test_a_file_gives_what_its_text_gives(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    # Settings hold a Directory, which compares by identity; its full description compares by value.
    assert describe(load_settings(path)) == describe(settings_from_text(FULL, path))
    assert_names(failure(write(tmp_path, "[organization]\n")), path, "organization.domains", "missing")


# --- paths in the file are relative to the file -------------------------------------------------


def test_smtp_tls_and_auth_files_are_relative_to_the_config(tmp_path: Path) -> None:
    smtp = '[smtp]\ntls_certificate = "c.pem"\ntls_key = "/abs/k.pem"\n'
    smtp += 'require_starttls = true\nauth_file = "u"\n'
    settings = load_settings(write(tmp_path, MINIMAL + smtp))
    assert settings.smtp.tls_certificate == tmp_path / "c.pem"
    assert settings.smtp.tls_key == Path("/abs/k.pem")
    assert settings.smtp.require_starttls and settings.smtp.auth_file == tmp_path / "u"


def test_imap_credential_files_are_relative_to_the_config(tmp_path: Path) -> None:
    accounts = load_settings(write(tmp_path, FULL)).imap_accounts
    assert accounts[0].password_file == tmp_path / "secrets/alice"
    assert accounts[1].oauth2_token_file == Path("/run/credentials/ttrd.service/support")


def test_a_relative_config_path_anchors_its_files_where_the_file_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon may later work from another folder: the paths it is given must not depend on this one.
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc", FULL)
    monkeypatch.chdir(tmp_path)
    settings = load_settings("etc/ttrd.toml")
    assert settings.path == Path("etc/ttrd.toml")
    assert settings.imap_accounts[0].password_file == tmp_path / "etc" / "secrets/alice"
