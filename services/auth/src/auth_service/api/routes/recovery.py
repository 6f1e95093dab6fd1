"""Forgotten passwords and email verification: the routes that work with mailed links."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from auth_service.api import PREFIX
from auth_service.api.cookies import clear_refresh_cookie
from auth_service.api.deps import Context, CurrentUser
from auth_service.schemas import (
    Accepted,
    ConfirmEmailChangeRequest,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from auth_service.services import email_change, email_verification, password_reset
from taskgate_common.errors import error_responses

router = APIRouter(prefix=PREFIX, tags=["recovery"])

FORGOT_ANSWER = Accepted(
    detail="If an account has this email address, a link to reset its password is on its way."
)


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Mail a password-reset link; the same 202 whether or not the account exists",
    responses=error_responses(422, 429, 503),
)
async def forgot_password(body: ForgotPasswordRequest, ctx: Context, request: Request) -> Accepted:
    await ctx.limits.forgot_password(request, body.email)
    password_reset.request_reset(ctx, body.email)
    return FORGOT_ANSWER


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a new password with a mailed token; ends every session",
    responses=error_responses(400, 422, 503),
)
async def reset_password(body: ResetPasswordRequest, ctx: Context) -> Response:
    await password_reset.reset_password(ctx, body.token, body.new_password)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, ctx.settings)
    return response


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Mail a new verification link to the current user's address",
    responses=error_responses(400, 401, 429, 503),
    operation_id="requestEmailVerification",
)
async def request_verification(ctx: Context, user: CurrentUser, request: Request) -> Accepted:
    await ctx.limits.account_mail(request, user)
    email_verification.request_verification(ctx, user)
    return Accepted(detail="A verification link is on its way to your email address.")


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Mark the email address verified with a mailed token",
    responses=error_responses(400, 422, 503),
)
async def verify_email(body: VerifyEmailRequest, ctx: Context) -> Response:
    await email_verification.verify_email(ctx, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/confirm-email-change",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Make the pending email address the account's address, with the mailed token",
    responses=error_responses(400, 409, 422, 503),
)
async def confirm_email_change(body: ConfirmEmailChangeRequest, ctx: Context) -> Response:
    await email_change.confirm_change(ctx, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
