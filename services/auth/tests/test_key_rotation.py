"""Several signing keys: one signs, all are published; the rotation procedure step by step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import jwt
import pytest
from auth_factories import Account, MakeAccountFn, bearer

from auth_service.__main__ import main
from auth_service.core.config import Settings
from auth_service.core.signing_keys import SigningKeyError, load_key_ring, write_new_key
from auth_service.main import create_app


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A running auth service (its own process state, the shared test database)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def _login(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _published(client: httpx.AsyncClient) -> set[str]:
    return {key["kid"] for key in (await client.get("/auth/.well-known/jwks.json")).json()["keys"]}


async def _me_status(client: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    response = await client.get("/auth/me", headers=bearer(token))
    return response.status_code, response.json().get("code")


async def test_rotation_procedure_without_failed_verifications(
    settings: Settings, tmp_path: Path, make_account: MakeAccountFn
) -> None:
    keys = tmp_path / "keys"
    old = write_new_key(keys / "2026-01.pem")
    account = await make_account()
    in_dir = settings.model_copy(update={"signing_keys_dir": keys})

    # Before: one key in the directory, signing.
    async with _service(in_dir) as before:
        old_token = await _login(before, account)
    assert jwt.get_unverified_header(old_token)["kid"] == old.kid

    # Step 1: add the new key; it is published but the old one still signs.
    new = write_new_key(keys / "2026-02.pem")
    async with _service(in_dir.model_copy(update={"active_key_id": "2026-01"})) as step1:
        assert await _published(step1) == {old.kid, new.kid}
        assert jwt.get_unverified_header(await _login(step1, account))["kid"] == old.kid

    # Step 2 (after caches refreshed): switch the signer; old tokens keep verifying.
    async with _service(in_dir.model_copy(update={"active_key_id": new.kid})) as step2:
        new_token = await _login(step2, account)
        assert jwt.get_unverified_header(new_token)["kid"] == new.kid
        assert await _published(step2) == {old.kid, new.kid}
        assert await _me_status(step2, old_token) == (200, None)  # published, not active
        assert await _me_status(step2, new_token) == (200, None)

    # Step 3 (after the longest access-token lifetime): remove the old key.
    (keys / "2026-01.pem").unlink()
    async with _service(in_dir) as after:
        assert await _published(after) == {new.kid}
        assert await _me_status(after, old_token) == (401, "invalid_token")  # rotated out
        assert await _me_status(after, new_token) == (200, None)


def test_several_keys_need_an_explicit_active_one(tmp_path: Path) -> None:
    a = write_new_key(tmp_path / "a.pem")
    b = write_new_key(tmp_path / "b.pem")

    with pytest.raises(SigningKeyError, match="AUTH_ACTIVE_KEY_ID"):
        load_key_ring(key_file=tmp_path / "unused.pem", keys_dir=tmp_path)
    with pytest.raises(SigningKeyError, match="matches 0 of the keys"):
        load_key_ring(key_file=tmp_path / "unused.pem", keys_dir=tmp_path, active="c")
    for name in ("b", "b.pem", b.kid):
        ring = load_key_ring(key_file=tmp_path / "unused.pem", keys_dir=tmp_path, active=name)
        assert ring.active.kid == b.kid
        assert [key.kid for key in ring.published] == [a.kid, b.kid]


def test_a_list_of_key_files_works_and_duplicates_collapse(tmp_path: Path) -> None:
    a = write_new_key(tmp_path / "a.pem")
    b = write_new_key(tmp_path / "b.pem")
    files = [str(tmp_path / "a.pem"), str(tmp_path / "b.pem"), str(tmp_path / "a.pem")]
    ring = load_key_ring(key_file=tmp_path / "unused.pem", key_files=files, active=a.kid)
    assert ring.active.kid == a.kid
    assert [key.kid for key in ring.published] == [a.kid, b.kid]


def test_the_single_key_file_setting_still_works(tmp_path: Path) -> None:
    key = write_new_key(tmp_path / "only.pem")
    ring = load_key_ring(key_file=tmp_path / "only.pem")
    assert ring.active.kid == key.kid
    assert [k.kid for k in ring.published] == [key.kid]


@pytest.mark.parametrize("problem", ["missing_dir", "empty_dir", "not_a_key"])
def test_bad_key_configuration_stops_startup_with_a_clear_message(
    settings: Settings, tmp_path: Path, problem: str
) -> None:
    keys = tmp_path / "keys"
    if problem != "missing_dir":
        keys.mkdir()
    if problem == "not_a_key":
        (keys / "junk.pem").write_text("hello")
    with pytest.raises(SigningKeyError, match=r"keys|PEM"):
        create_app(settings.model_copy(update={"signing_keys_dir": keys}))


def test_keys_list_shows_kids_and_the_active_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_new_key(tmp_path / "a.pem")
    b = write_new_key(tmp_path / "b.pem")
    monkeypatch.setenv("AUTH_SIGNING_KEYS_DIR", str(tmp_path))
    monkeypatch.setenv("AUTH_ACTIVE_KEY_ID", "b")

    assert main(["keys", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{a.kid}  {tmp_path / 'a.pem'}  published",
        f"{b.kid}  {tmp_path / 'b.pem'}  active (signs, published)",
    ]
    monkeypatch.delenv("AUTH_ACTIVE_KEY_ID")
    assert main(["keys", "list"]) == 1
    assert "AUTH_ACTIVE_KEY_ID" in capsys.readouterr().err


def test_keys_generate_adds_a_new_file_to_the_keys_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_SIGNING_KEYS_DIR", str(tmp_path))

    assert main(["keys", "generate"]) == 0
    assert main(["keys", "generate", "--if-missing"]) == 0  # a key is there: nothing to do

    [written] = tmp_path.glob("*.pem")
    assert written.name.startswith("key-")
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    assert (
        capsys.readouterr().out
        == f"wrote {written} (kid {load_key_ring(key_file=written).active.kid})\n"
    )
