"""The test OpenID provider (reset_mailbot_testing.oidc_provider) against a real OIDC client:
authlib's httpx OAuth2Client does the authorization code flow with PKCE, httpx2 posts the login
form, and the id_token is checked against the provider's JWKS with authlib.jose. If these
fail, every console login test built on the provider is suspect."""

from __future__ import annotations

import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator

import httpx2
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from reset_mailbot_testing.oidc_provider import OidcClient, OidcProvider, OidcUser

CLIENT_ID, SECRET = "console", "console-secret"
REDIRECT = "http://127.0.0.1:1/auth/callback"  # never fetched: the tests read the Location
SCOPE = "openid email profile groups"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    server = OidcProvider(
        clients={CLIENT_ID: OidcClient(SECRET, [REDIRECT]),
                 "other": OidcClient("other-secret", ["http://127.0.0.1:1/other"])},
        users={"alice": OidcUser("alice@forus.test", "Alice Support", ["support"]),
               "bob": OidcUser("bob@forus.test", "Bob Admin", ["support", "admin"], sub="b-42")})
    with server:
        yield server


def _client(auth_method: str = "client_secret_basic", **kwargs: object) -> OAuth2Client:
    return OAuth2Client(CLIENT_ID, SECRET, scope=SCOPE, redirect_uri=REDIRECT,
                        token_endpoint_auth_method=auth_method, **kwargs)  # type: ignore[arg-type]


def _login(authorize_url: str, username: str) -> str:
    """Open the authorization URL, post the login form as a browser would; the redirect."""
    with httpx2.Client() as http:
        form = http.get(authorize_url)
        assert form.status_code == 200, form.text
        assert 'id="username"' in form.text and 'id="login"' in form.text
        request_id = re.search(r'name="request" value="([^"]+)"', form.text)
        assert request_id is not None
        answer = http.post(urllib.parse.urljoin(authorize_url, "/authorize"),
                           data={"request": request_id.group(1), "username": username})
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def _start(provider: OidcProvider, client: OAuth2Client,
           verifier: str | None) -> tuple[str, str, str]:
    """(authorization URL, state, nonce) for a login with PKCE (unless verifier is None)."""
    nonce = generate_token(20)
    extra = {"code_verifier": verifier} if verifier is not None else {}
    url, state = client.create_authorization_url(provider.url + "/authorize", nonce=nonce,
                                                 **extra)
    return url, state, nonce


def _query(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def test_discovery_names_the_endpoints_and_pkce(provider: OidcProvider) -> None:
    found = httpx2.get(provider.discovery_url).json()
    assert found["issuer"] == provider.url
    assert found["authorization_endpoint"] == provider.url + "/authorize"
    assert found["token_endpoint"] == provider.url + "/token"
    assert found["jwks_uri"] == provider.url + "/jwks"
    assert found["userinfo_endpoint"] == provider.url + "/userinfo"
    assert found["response_types_supported"] == ["code"]
    assert found["code_challenge_methods_supported"] == ["S256"]
    assert found["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "email", "groups"} <= set(found["scopes_supported"])
    assert {"email", "name", "groups", "nonce"} <= set(found["claims_supported"])


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_code_flow_with_pkce_gives_a_signed_id_token(provider: OidcProvider,
                                                     auth_method: str) -> None:
    verifier = generate_token(48)
    with _client(auth_method, code_challenge_method="S256") as client:
        url, state, nonce = _start(provider, client, verifier)
        location = _login(url, "bob")
        assert location.startswith(REDIRECT + "?")
        assert _query(location)["state"] == state
        token = client.fetch_token(provider.url + "/token", authorization_response=location,
                                   state=state, code_verifier=verifier)
        userinfo = client.get(provider.url + "/userinfo").json()

    jwks = JsonWebKey.import_key_set(httpx2.get(provider.url + "/jwks").json())
    header = jwt.decode(token["id_token"], jwks).header
    assert header["alg"] == "RS256" and header["kid"] == provider.kid
    claims = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": provider.url}},
                        claims_params={"nonce": nonce, "client_id": CLIENT_ID,
                                       "access_token": token["access_token"]})
    claims.validate()  # iss, aud, exp, iat, nonce and at_hash
    assert claims["sub"] == "b-42" and claims["aud"] == CLIENT_ID
    assert (claims["email"], claims["name"], claims["groups"]) == (
        "bob@forus.test", "Bob Admin", ["support", "admin"])
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert userinfo == {"sub": "b-42", "email": "bob@forus.test", "email_verified": True,
                        "name": "Bob Admin", "groups": ["support", "admin"]}

    [asked] = provider.authorizations
    assert asked.code_challenge_method == "S256" and asked.code_challenge
    assert (asked.username, asked.nonce, asked.error) == ("bob", nonce, None)
    [exchange] = provider.token_requests
    assert exchange.auth_method == auth_method
    assert exchange.pkce_verified and exchange.code_verifier == verifier
    assert exchange.code == asked.code and exchange.error is None


def test_the_id_token_does_not_verify_with_another_key(provider: OidcProvider) -> None:
    other = JsonWebKey.generate_key("RSA", 2048, is_private=True)
    token = provider.sign({"iss": provider.url, "sub": "x"})
    with pytest.raises(Exception, match="bad_signature"):
        jwt.decode(token, other)


def test_extra_claims_go_into_the_id_token(provider: OidcProvider) -> None:
    """A test may hand out a token from another issuer; a client must refuse it."""
    provider.extra_claims = {"iss": "http://127.0.0.1:1/elsewhere"}
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, state, nonce = _start(provider, client, verifier)
        token = client.fetch_token(provider.url + "/token", state=state, code_verifier=verifier,
                                   authorization_response=_login(url, "alice"))
    jwks = JsonWebKey.import_key_set(provider.jwks())
    claims = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": provider.url}},
                        claims_params={"nonce": nonce, "client_id": CLIENT_ID})
    with pytest.raises(Exception, match=r"invalid_claim: .*'iss'"):  # joserfc's, under authlib
        claims.validate()


def test_a_wrong_code_verifier_is_refused(provider: OidcProvider) -> None:
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, state, _ = _start(provider, client, verifier)
        location = _login(url, "alice")
        with pytest.raises(OAuthError, match="invalid_grant"):
            client.fetch_token(provider.url + "/token", authorization_response=location,
                               state=state, code_verifier=generate_token(48))
    [exchange] = provider.token_requests
    assert not exchange.pkce_verified and exchange.error == "invalid_grant"


def test_a_token_request_without_the_verifier_is_refused(provider: OidcProvider) -> None:
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, _, _ = _start(provider, client, verifier)
        code = _query(_login(url, "alice"))["code"]
    answer = httpx2.post(provider.url + "/token", auth=(CLIENT_ID, SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_code_is_used_once_and_its_reuse_revokes_the_first_token(
        provider: OidcProvider) -> None:
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, state, _ = _start(provider, client, verifier)
        location = _login(url, "alice")
        first = client.fetch_token(provider.url + "/token", authorization_response=location,
                                   state=state, code_verifier=verifier)
        with pytest.raises(OAuthError, match="invalid_grant"):
            client.fetch_token(provider.url + "/token", authorization_response=location,
                               state=state, code_verifier=verifier)
    answer = httpx2.get(provider.url + "/userinfo",
                       headers={"Authorization": f"Bearer {first['access_token']}"})
    assert answer.status_code == 401 and "Bearer" in answer.headers["WWW-Authenticate"]
    assert [r.error for r in provider.token_requests] == [None, "invalid_grant"]


def test_an_expired_code_is_refused(provider: OidcProvider) -> None:
    provider.code_lifetime_seconds = 0.2
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, state, _ = _start(provider, client, verifier)
        location = _login(url, "alice")
        time.sleep(0.3)
        with pytest.raises(OAuthError, match="invalid_grant"):
            client.fetch_token(provider.url + "/token", authorization_response=location,
                               state=state, code_verifier=verifier)


def test_the_code_needs_the_same_redirect_uri_and_client(provider: OidcProvider) -> None:
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, _, _ = _start(provider, client, verifier)
        code = _query(_login(url, "alice"))["code"]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    elsewhere = httpx2.post(provider.url + "/token", auth=("other", "other-secret"),
                           data={**form, "redirect_uri": "http://127.0.0.1:1/other"})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    moved = httpx2.post(provider.url + "/token", auth=(CLIENT_ID, SECRET),
                       data={**form, "redirect_uri": REDIRECT + "/x"})
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_is_refused(provider: OidcProvider) -> None:
    verifier = generate_token(48)
    with _client(code_challenge_method="S256") as client:
        url, _, _ = _start(provider, client, verifier)
        code = _query(_login(url, "alice"))["code"]
    for auth, data in [((CLIENT_ID, "wrong"), {}), (None, {"client_id": CLIENT_ID}),
                       (None, {"client_id": CLIENT_ID, "client_secret": "wrong"})]:
        answer = httpx2.post(provider.url + "/token", auth=auth, data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": REDIRECT, **data})
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_an_unregistered_redirect_uri_is_shown_not_followed(provider: OidcProvider) -> None:
    with OAuth2Client(CLIENT_ID, SECRET, scope=SCOPE, code_challenge_method="S256",
                      redirect_uri="http://127.0.0.1:1/auth/callback/evil") as client:
        url, _, _ = _start(provider, client, generate_token(48))
    answer = httpx2.get(url)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "not registered" in answer.text
    assert provider.authorizations[-1].error == "unregistered redirect_uri"
    unknown = httpx2.get(url.replace(f"client_id={CLIENT_ID}", "client_id=nobody"))
    assert unknown.status_code == 400 and "Location" not in unknown.headers


def test_an_authorization_request_without_pkce_is_refused(provider: OidcProvider) -> None:
    with _client() as client:
        url, state, _ = _start(provider, client, verifier=None)
    assert "code_challenge" not in url
    answer = httpx2.get(url)
    assert answer.status_code == 302
    query = _query(answer.headers["Location"])
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]
    assert query["state"] == state
    assert provider.authorizations[-1].code_challenge is None


@pytest.mark.parametrize(("change", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "email"}, "invalid_scope"),
    ({"nonce": ""}, "invalid_request"),
    ({"state": ""}, "invalid_request"),
])
def test_other_bad_authorization_requests_go_back_with_an_error(
        provider: OidcProvider, change: dict[str, str], error: str) -> None:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
             "scope": SCOPE, "state": "s1", "nonce": "n1", "code_challenge": "x" * 43,
             "code_challenge_method": "S256", **change}
    answer = httpx2.get(provider.url + "/authorize", params=query)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    assert _query(answer.headers["Location"])["error"] == error


def test_an_unknown_user_gets_the_form_again(provider: OidcProvider) -> None:
    with _client(code_challenge_method="S256") as client:
        url, _, _ = _start(provider, client, generate_token(48))
    with httpx2.Client() as http:
        form = http.get(url).text
        request_id = re.search(r'name="request" value="([^"]+)"', form)
        assert request_id is not None
        again = http.post(provider.url + "/authorize",
                          data={"request": request_id.group(1), "username": "mallory"})
        assert again.status_code == 200 and "No user" in again.text
        assert 'id="username"' in again.text
        done = http.post(provider.url + "/authorize",
                         data={"request": request_id.group(1), "username": "alice"})
        assert done.status_code == 302
        replay = http.post(provider.url + "/authorize",
                           data={"request": request_id.group(1), "username": "alice"})
        assert replay.status_code == 400  # a login request is used once


def test_userinfo_needs_a_live_token(provider: OidcProvider) -> None:
    for authorization in [None, "Bearer " + secrets.token_urlsafe(24)]:
        headers = {"Authorization": authorization} if authorization else {}
        answer = httpx2.get(provider.url + "/userinfo", headers=headers)
        assert answer.status_code == 401
    assert provider.userinfo_requests == 2
