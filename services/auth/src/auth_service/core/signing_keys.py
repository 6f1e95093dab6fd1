"""RS256 signing keys from PEM files, their RFC 7638 `kid`s, and the public JWKS.

The private key lives only in memory and in its mounted file; nothing here ever formats it
into a string that could reach a log or a response.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from auth_service.core.config import Settings

MIN_KEY_BITS = 2048


class SigningKeyError(RuntimeError):
    """The configured key is missing or unusable; the message says what to do."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """The JWK thumbprint: SHA-256 over the required members in lexicographic order."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    public_key: rsa.RSAPublicKey = field(repr=False)
    public_jwk: dict[str, str]

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        public_key = private_key.public_key()
        numbers = public_key.public_numbers()
        jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
        kid = rfc7638_thumbprint(jwk)
        return cls(
            kid=kid,
            private_key=private_key,
            public_key=public_key,
            public_jwk={**jwk, "kid": kid, "use": "sig", "alg": "RS256"},
        )


def load_signing_key(path: Path) -> SigningKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"signing key file {path} does not exist; create one with "
            f"`python -m auth_service keys generate --out {path}`"
        ) from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError(f"{path} is not an RSA key (RS256 needs RSA)")
    if key.key_size < MIN_KEY_BITS:
        raise SigningKeyError(f"{path} is a {key.key_size}-bit key; at least {MIN_KEY_BITS}")
    return SigningKey.from_private_key(key)


def generate_private_key_pem(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_new_key(path: Path, bits: int = 2048, overwrite: bool = False) -> SigningKey:
    """Write a new private key readable by its owner only, and return it loaded."""
    if path.exists() and not overwrite:
        raise SigningKeyError(f"{path} already exists; refusing to overwrite a signing key")
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_private_key_pem(bits)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return load_signing_key(path)


@dataclass(frozen=True)
class KeyRing:
    """The key that signs, and every key a verifier may see a token from."""

    active: SigningKey
    published: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        if self.find(self.active.kid) is None:
            raise SigningKeyError("the active signing key must also be published")

    @classmethod
    def single(cls, key: SigningKey) -> KeyRing:
        return cls(active=key, published=(key,))

    def find(self, kid: str) -> SigningKey | None:
        for key in self.published:
            if key.kid == kid:
                return key
        return None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk for key in self.published]}


@dataclass(frozen=True)
class KeyFile:
    path: Path
    key: SigningKey


def _matches(entry: KeyFile, wanted: str) -> bool:
    return wanted in (entry.key.kid, entry.path.name, entry.path.stem)


def load_key_files(
    *, key_file: Path, keys_dir: Path | None = None, key_files: list[str] | None = None
) -> list[KeyFile]:
    """Every configured key, in a stable order (file name), without duplicates.

    `keys_dir` and `key_files` add up; `key_file` is used alone when neither is set.
    """
    paths: list[Path] = []
    if keys_dir is not None:
        if not keys_dir.is_dir():
            raise SigningKeyError(f"signing keys directory {keys_dir} does not exist")
        paths.extend(sorted(keys_dir.glob("*.pem")))
        if not paths:
            raise SigningKeyError(f"signing keys directory {keys_dir} holds no *.pem file")
    paths.extend(Path(item) for item in key_files or [])
    if not paths:
        paths = [key_file]
    loaded: list[KeyFile] = []
    for path in paths:
        key = load_signing_key(path)
        if all(entry.key.kid != key.kid for entry in loaded):
            loaded.append(KeyFile(path, key))
    return loaded


def choose_active(entries: list[KeyFile], active: str | None) -> KeyFile:
    if active:
        chosen = [entry for entry in entries if _matches(entry, active)]
        if len(chosen) != 1:
            names = ", ".join(f"{e.path.name} ({e.key.kid})" for e in entries)
            raise SigningKeyError(
                f"AUTH_ACTIVE_KEY_ID={active!r} matches {len(chosen)} of the keys: {names}"
            )
        return chosen[0]
    if len(entries) > 1:
        raise SigningKeyError(
            f"{len(entries)} signing keys are configured; set AUTH_ACTIVE_KEY_ID to the kid "
            "or file name of the one that signs (see `python -m auth_service keys list`)"
        )
    return entries[0]


def load_key_ring(
    *,
    key_file: Path,
    keys_dir: Path | None = None,
    key_files: list[str] | None = None,
    active: str | None = None,
) -> KeyRing:
    """The configured keys: one signs, all are published in the JWKS."""
    entries = load_key_files(key_file=key_file, keys_dir=keys_dir, key_files=key_files)
    signer = choose_active(entries, active)
    return KeyRing(active=signer.key, published=tuple(entry.key for entry in entries))


def configured_key_files(settings: Settings) -> list[KeyFile]:
    return load_key_files(
        key_file=settings.signing_key_file,
        keys_dir=settings.signing_keys_dir,
        key_files=settings.signing_key_files,
    )


def key_ring_for(settings: Settings) -> KeyRing:
    return load_key_ring(
        key_file=settings.signing_key_file,
        keys_dir=settings.signing_keys_dir,
        key_files=settings.signing_key_files,
        active=settings.active_key_id,
    )
