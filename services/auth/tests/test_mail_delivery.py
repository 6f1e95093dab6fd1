"""The background jobs that send mail: shutdown waits for them, the queue is bounded."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest
from auth_factories import MakeAccountFn
from mail_support import SmtpSink, smtp_settings

from auth_service.core.background import BackgroundJobs
from auth_service.core.config import Settings
from auth_service.main import create_app


async def test_shutdown_sends_the_mails_already_accepted(
    settings: Settings, smtp_sink: SmtpSink, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    smtp_sink.clear()
    app = create_app(smtp_settings(settings, smtp_sink))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post("/auth/forgot-password", json={"email": account.email})
            assert response.status_code == 202
        # No drain here: leaving the lifespan is the server shutting down.
    assert [m["To"] for m in smtp_sink.messages] == [account.email]


async def test_drain_waits_for_jobs_started_while_draining() -> None:
    jobs = BackgroundJobs(limit=10)
    done: list[str] = []

    async def second() -> None:
        done.append("second")

    async def first() -> None:
        jobs.spawn(second(), "second")
        done.append("first")

    jobs.spawn(first(), "first")
    assert await jobs.drain()
    assert done == ["first", "second"]


async def test_a_full_queue_drops_new_jobs_and_close_cancels_stragglers() -> None:
    jobs = BackgroundJobs(limit=1)
    release = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def extra() -> None:
        raise AssertionError("a dropped job must never run")

    assert jobs.spawn(stuck(), "stuck")
    assert not jobs.spawn(extra(), "extra")  # closed, never awaited, no warning
    await asyncio.sleep(0)  # one loop turn: `stuck` starts waiting
    assert not await jobs.drain(timeout=0)
    await jobs.close(timeout=0)
    assert cancelled.is_set()
    assert await jobs.drain(timeout=0)


@pytest.mark.filterwarnings("error::RuntimeWarning")
async def test_close_before_a_job_started_leaves_no_unawaited_coroutine() -> None:
    jobs = BackgroundJobs(limit=1)

    async def never_started() -> None:
        raise AssertionError("cancelled before its first step")

    jobs.spawn(never_started(), "late")
    await jobs.close(timeout=0)
    gc.collect()  # a "never awaited" RuntimeWarning would surface here, as an error


async def test_a_failing_job_is_logged_not_raised() -> None:
    jobs = BackgroundJobs(limit=1)

    async def broken() -> None:
        raise RuntimeError("boom")

    jobs.spawn(broken(), "broken")
    assert await jobs.drain()
