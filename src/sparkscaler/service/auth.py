"""The bearer token that every change through the API needs.

Reading is open (it binds to 127.0.0.1 by default); changing the mode, the policy or the size is
not: a local process that can reach the port is not necessarily one that may resize the cluster.
The token comes from ``service.token`` in the config, or is generated at the first start into
the state directory, readable by its owner only, and reused afterwards.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's annotation at
# run time, and it names ``scheme``, a local of :func:`bearer_guard`.
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sparkscaler.config import Config


class TokenError(Exception):
    """The token file cannot be used; the message says what to do."""


def load_or_create_token(path: Path) -> str:
    """The token in ``path``; a new one written there (mode 0600) when there is none.

    The file is created with ``O_EXCL``, so two services starting at once cannot both write
    one. An existing file that others may read is refused rather than trusted, as ssh refuses
    a private key that others can read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        token = path.read_text().strip()
    except OSError as error:
        raise TokenError(f"cannot read the token file {path}: {error.strerror}") from None
    if mode & 0o077:
        raise TokenError(
            f"the token file {path} can be read by others (mode {mode:04o}); "
            f"`chmod 600 {path}`, or delete it and a new token is generated"
        )
    if not token:
        raise TokenError(f"the token file {path} is empty; delete it and a new one is generated")
    return token


def resolve_token(config: Config) -> tuple[str, str]:
    """The service's token and, for the user, where it is: the config or the token file."""
    if config.service.token is not None:
        return config.service.token.get_secret_value(), "service.token in the config"
    path = config.service_token_path
    return load_or_create_token(path), str(path)


def bearer_guard(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A FastAPI dependency that lets a request through only with ``Authorization: Bearer
    <token>``; anything else is a 401. It is declared as HTTP bearer security, so the OpenAPI
    schema (and /docs' Authorize button) knows about it."""
    expected = token.encode()
    scheme = HTTPBearer(
        auto_error=False,
        description="The service token: service.token in the config, or the file "
        "<state_dir>/service-token that `sparkscaler serve` generates.",
    )

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        # Bytes, compared in constant time: a header may hold any characters.
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), expected
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="a change needs the header Authorization: Bearer <token> with the "
                "service token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token
