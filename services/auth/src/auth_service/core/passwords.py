"""Password hashing with Argon2id (bcrypt hashes verified and upgraded), off the event loop.

Hashing runs in worker threads (argon2-cffi and bcrypt release the GIL) behind a capacity
limiter, so a login burst uses every core without holding 64 MiB per waiting request.
"""

from __future__ import annotations

import secrets

import anyio
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher


class PasswordHasher:
    def __init__(
        self,
        concurrency: int,
        *,
        time_cost: int = 2,
        memory_kib: int = 65_536,
        parallelism: int = 1,
    ) -> None:
        argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._hash = PasswordHash((argon2, BcryptHasher()))
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(valid, replacement hash when the stored one is outdated, e.g. bcrypt)."""
        return await anyio.to_thread.run_sync(
            self._hash.verify_and_update, password, password_hash, limiter=self._limiter
        )

    async def warm_up(self) -> None:
        """Make the dummy hash at startup, so the first unknown-user login is not slower."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    async def burn_dummy(self, password: str) -> None:
        """Spend one verification's time, so an unknown user costs what a wrong password does."""
        await self.warm_up()
        assert self._dummy_hash is not None
        await self.verify(password, self._dummy_hash)
