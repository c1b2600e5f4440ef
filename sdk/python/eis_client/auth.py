"""Authorization of the requests, matching the deployment's mode: none (local), a JWT bearer
token, or AWS SigV4 (IAM) for the service `execute-api`. An auth object returns the headers to
add to a request whose method, URL, final body and headers it is given."""

from __future__ import annotations

from typing import Callable, Union


class BearerAuth:
    """`Authorization: Bearer <token>`. `provider` is the token, or a callable returning it,
    called for every request so that it can hand out a refreshed token (cache it there)."""

    def __init__(self, provider: Union[str, Callable[[], str]]):
        self._provider = provider if callable(provider) else (lambda: provider)

    def headers(self, method: str, url: str, body: bytes, headers: dict) -> dict:
        return {"Authorization": f"Bearer {self._provider()}"}


class SigV4Auth:
    """AWS Signature Version 4 for API Gateway's IAM authorization (service `execute-api`),
    with botocore (`pip install eis-client[aws]`). `credentials` default to botocore's chain
    (environment, profile, instance or task role), refreshed by botocore when they expire."""

    def __init__(self, region: str, credentials=None):
        try:
            import botocore.auth
            import botocore.awsrequest
            import botocore.session
        except ImportError:
            raise ImportError("SigV4Auth needs botocore: pip install 'eis-client[aws]'") from None
        if credentials is None:
            credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ValueError("SigV4Auth: no AWS credentials found")
        self._signer = botocore.auth.SigV4Auth(credentials, "execute-api", region)
        self._request = botocore.awsrequest.AWSRequest

    def headers(self, method: str, url: str, body: bytes, headers: dict) -> dict:
        request = self._request(method=method, url=url, data=body, headers=dict(headers))
        self._signer.add_auth(request)
        return {name: value for name, value in request.headers.items() if name not in headers}
