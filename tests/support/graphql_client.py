"""A small GraphQL client over real HTTP, with helpers for the common account steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

STRONG_PASSWORD = "Correct-Horse-42"


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.http.post("/graphql", json=body, headers=all_headers)

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=token, headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def data(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Execute and insist on success."""
        result = await self.execute(query, variables, token=token, headers=headers)
        assert "errors" not in result, result
        data: dict[str, Any] = result["data"]
        return data

    async def mutate(
        self, name: str, input: dict[str, Any], selection: str = "", *, token: str | None = None
    ) -> dict[str, Any]:
        """Run `name(input: $input) { errors {...} <selection> }` and return the payload."""
        query = (
            f"mutation($input: {name[0].upper()}{name[1:]}Input!) "
            f"{{ {name}(input: $input) {{ errors {{ field code message }} {selection} }} }}"
        )
        result = await self.execute(query, {"input": input}, token=token)
        assert "errors" not in result, result
        payload: dict[str, Any] = result["data"][name]
        return payload

    async def sign_up(
        self,
        email: str,
        password: str = STRONG_PASSWORD,
        *,
        name: str = "Test User",
        roles: tuple[str, ...] = ("POSTER",),
        phone: str | None = None,
    ) -> None:
        """Sign up; the answer is the same whether or not the address was free (log in to
        get the user)."""
        payload = await self.mutate(
            "signUp",
            {
                "name": name,
                "email": email,
                "password": password,
                "roles": list(roles),
                "phone": phone,
            },
        )
        assert payload["errors"] == [], payload

    async def login(self, email: str, password: str = STRONG_PASSWORD, **extra: Any) -> Tokens:
        payload = await self.mutate(
            "login",
            {"email": email, "password": password, **extra},
            "user { id } tokens { accessToken refreshToken }",
        )
        assert payload["errors"] == [], payload
        tokens = payload["tokens"]
        return Tokens(payload["user"]["id"], tokens["accessToken"], tokens["refreshToken"])

    async def member(self, email: str, **sign_up: Any) -> Tokens:
        """Sign up and log in."""
        await self.sign_up(email, **sign_up)
        return await self.login(email, sign_up.get("password", STRONG_PASSWORD))


@dataclass(frozen=True)
class Tokens:
    user_id: str
    access: str
    refresh: str | None


ME = "{ me { id name email emailVerified phone roles status } }"


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["errors"]]


def graphql_error_codes(result: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in result.get("errors", [])]
