"""The Elasticsearch client: connection options, the REST API version it asks for, cluster errors.

REST API compatibility: the 9.x client asks for `compatible-with=9` on every request, which an
Elasticsearch 8 cluster refuses; 8 and 9 clusters both accept `compatible-with=8`. The client has no
setting for it (the endpoint methods set their own accept/content-type headers, which replace headers given
to the constructor or to `.options()`, and the client rewrites them to its own major version). So
`make_client` passes `transport_class=CompatTransport`, the constructor's hook for a transport of one's
own: a `Transport` whose `perform_request` sends the agreed version instead. Every request of every API
(and of `elasticsearch.helpers`, and the sniffer) goes through it.

Every failure to reach the cluster (refused connection, timeout, 429/5xx after retries, refused
credentials) becomes the kit's `Unavailable` (`translate_errors`), so the pipeline worker retries the call
later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from elastic_transport import HttpHeaders, Transport, TransportApiResponse
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import ApiError, Elasticsearch, TransportError, UnsupportedProductError
from elasticsearch import __versionstr__ as client_version

from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.errors import Unavailable

CLIENT_MAJOR = int(client_version.split(".")[0])
# Both 8 and 9 clusters answer a client that asks for the 8 API: what is asked until the cluster's version is known.
FIRST_COMPAT = 8 if CLIENT_MAJOR > 8 else CLIENT_MAJOR
# Statuses worth sending again: overloaded (429), and a node or shard not there right now.
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class CompatTransport(Transport):
    """A transport that asks for the REST API of `compat_major` (`compatible-with=N` in accept and
    content-type) where the client would ask for its own major version."""

    compat_major: int = FIRST_COMPAT

    def perform_request(
        self, method: str, target: str, *, headers: Mapping[str, Any] | DefaultType = DEFAULT, **kwargs: Any
    ) -> TransportApiResponse:
        if not isinstance(headers, DefaultType) and self.compat_major != CLIENT_MAJOR:
            headers = compat_headers(headers, self.compat_major)
        return super().perform_request(method, target, headers=headers, **kwargs)


def compat_headers(headers: Mapping[str, Any], major: int) -> HttpHeaders:
    """`headers` with `compatible-with=<client major>` in accept and content-type replaced by `major`."""
    pinned = HttpHeaders(headers)
    for name in ("accept", "content-type"):
        value = pinned.get(name)
        if value and f"compatible-with={CLIENT_MAJOR}" in value:
            pinned[name] = value.replace(f"compatible-with={CLIENT_MAJOR}", f"compatible-with={major}")
    return pinned


def make_client(settings: IndexerSettings) -> Elasticsearch:
    """The Elasticsearch client of the settings (auth, TLS, timeouts, one connection per handler thread), asking
    for the 8 REST API until `agree_version` is told the cluster's version."""
    options: dict[str, Any] = {
        "request_timeout": settings.request_timeout_seconds,
        "max_retries": 2,
        "retry_on_timeout": False,  # a bulk may have been applied; our own loop decides
        "connections_per_node": settings.max_workers + 4,
        "verify_certs": settings.elasticsearch_verify_certs,
        "transport_class": CompatTransport,
    }
    if settings.elasticsearch_username is not None and settings.elasticsearch_password is not None:
        options["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password.get_secret_value())
    if settings.elasticsearch_api_key is not None:
        options["api_key"] = settings.elasticsearch_api_key.get_secret_value()
    if settings.elasticsearch_ca_cert is not None:
        options["ca_certs"] = str(settings.elasticsearch_ca_cert)
    return Elasticsearch(settings.elasticsearch_urls, **options)


def _transport(client: Elasticsearch) -> CompatTransport:
    transport = client.transport
    if not isinstance(transport, CompatTransport):
        raise TypeError("the indexer needs an Elasticsearch client made by make_client (it agrees the API version)")
    return transport


def compat_major(client: Elasticsearch) -> int:
    """The REST API major version the client asks for now."""
    return _transport(client).compat_major


def agree_version(client: Elasticsearch, settings: IndexerSettings, server_version: str) -> None:
    """Make the client ask for the REST API of the cluster's major version (or of `elasticsearch_api_compat`),
    never newer than the client's own. Raises Unavailable for a cluster older than 8."""
    transport = _transport(client)
    major = int(server_version.split(".")[0])
    wanted = settings.elasticsearch_api_compat or major
    if major < 8:
        raise Unavailable(f"Elasticsearch {server_version} is too old: callscribe needs Elasticsearch 8 or 9")
    transport.compat_major = min(wanted, CLIENT_MAJOR)


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Cluster trouble -> Unavailable (the caller retries); anything else propagates."""
    try:
        yield
    except UnsupportedProductError as exc:
        raise Unavailable(f"the server at the Elasticsearch URL is not Elasticsearch ({exc}) while {what}") from exc
    except ApiError as exc:
        status = exc.meta.status
        if status in (401, 403):
            raise Unavailable(
                f"Elasticsearch refused the indexer's credentials ({status}) while {what}: {exc}; "
                "check INDEXER_ELASTICSEARCH_USERNAME/PASSWORD or API_KEY and the user's privileges"
            ) from exc
        if status in RETRIABLE_STATUSES:
            raise Unavailable(f"Elasticsearch is overloaded or unavailable ({status}) while {what}: {exc}") from exc
        raise
    except TransportError as exc:  # connection refused, timeout, TLS: the cluster cannot be reached
        raise Unavailable(f"Elasticsearch cannot be reached while {what}: {exc}; retry later") from exc


def error_type(exc: ApiError) -> str:
    """The `error.type` of an error response (e.g. resource_already_exists_exception)."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type", ""))
    return str(exc.message)


def error_reason(exc: ApiError) -> str:
    """`type: reason` of an error response, for messages."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(error, dict) or error:
        return describe_error(error)
    return str(exc.message)


def describe_error(error: Any) -> str:
    """`type: reason` of an Elasticsearch error object (of a response, or of one bulk item)."""
    if isinstance(error, dict):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error)
