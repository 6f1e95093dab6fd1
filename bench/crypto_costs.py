"""Per-operation cost of the CPU-bound work on the auth paths: password hashing and RS256.

Run with `make bench` (or `uv run python bench/crypto_costs.py`). Prints a Markdown table and
writes bench/results/crypto_costs.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from auth_service.core.access_tokens import issue_access_token
from auth_service.core.config import Settings
from auth_service.core.signing_keys import KeyRing, SigningKey
from taskgate_common.access_tokens import verify_access_token

ISSUER = "http://localhost:8080/auth"


def measure(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3),
        "runs": repeat,
    }


def service_argon2() -> PasswordHash:
    """Argon2id with the auth service's default parameters (what a login costs)."""
    fields = Settings.model_fields
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=fields["argon2_time_cost"].default,
                memory_cost=fields["argon2_memory_kib"].default,
                parallelism=fields["argon2_parallelism"].default,
            ),
        )
    )


def hash_bound(seconds: float = 5.0, threads: int | None = None) -> dict[str, float]:
    """The most logins this machine can verify: Argon2id verifications per second with one
    thread per core, each verifying in a loop (argon2-cffi releases the GIL), measured now,
    on this machine as loaded, not one hash timed alone and multiplied."""
    threads = threads or os.cpu_count() or 1
    hasher = service_argon2()
    stored = hasher.hash("bench password")
    deadline = time.perf_counter() + seconds
    counts = [0] * threads

    def verify_until_deadline(lane: int) -> None:
        while time.perf_counter() < deadline:
            hasher.verify("bench password", stored)
            counts[lane] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(verify_until_deadline, range(threads)))
    elapsed = time.perf_counter() - started
    return {"threads": threads, "verifications_per_s": round(sum(counts) / elapsed, 1)}


def main() -> None:
    argon2 = service_argon2()
    bcrypt = PasswordHash((BcryptHasher(),))
    argon2_hash = argon2.hash("correct horse battery")
    bcrypt_hash = bcrypt.hash("correct horse battery")
    key = SigningKey.from_private_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    keys = KeyRing.single(key)

    def sign() -> str:
        return issue_access_token(
            keys,
            issuer=ISSUER,
            audience=["tasks-api", "auth-api"],
            subject=uuid.uuid4(),
            session_id=uuid.uuid4(),
            role="user",
            token_version=0,
            ttl_seconds=900,
        )

    token = sign()
    results = {
        "argon2id hash (login/register)": measure(lambda: argon2.hash("correct horse"), 20),
        "argon2id verify (login)": measure(
            lambda: argon2.verify("correct horse battery", argon2_hash), 20
        ),
        "bcrypt verify (legacy hash)": measure(
            lambda: bcrypt.verify("correct horse battery", bcrypt_hash), 10
        ),
        "RS256 sign access token": measure(sign, 200),
        "RS256 verify access token (full checks)": measure(
            lambda: verify_access_token(
                token,
                lambda _: key.public_key,
                issuer=ISSUER,
                audience="tasks-api",
                leeway_seconds=30,
            ),
            1000,
        ),
    }
    cores = os.cpu_count() or 1
    verify_ms = results["argon2id verify (login)"]["median_ms"]
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {cores} cores, Python {platform.python_version()}"
    print(f"Machine: {machine}\n")
    print("| operation | median ms | p95 ms | runs |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']} | {r['p95_ms']} | {r['runs']} |")
    bound = hash_bound()
    print(
        f"\nLogin hash bound: {bound['verifications_per_s']} verifications/s on "
        f"{bound['threads']} threads at once ({cores} cores x 1000 / {verify_ms} ms would say "
        f"{cores * 1000 / verify_ms:.1f})"
    )
    out = Path(__file__).parent / "results" / "crypto_costs.json"
    out.parent.mkdir(exist_ok=True)
    payload = {"machine": machine, "results": results, "hash_bound": bound}
    out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
