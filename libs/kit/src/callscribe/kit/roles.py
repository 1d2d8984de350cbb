"""Who may call what: the one table of roles -> RPCs, applied by the auth interceptor to every method.

A tenant's token carries one role (the tenants file, `kit.tenants`); the pipeline's service accounts carry
the pseudo-role `service`. A method is allowed when its entry names the caller's role. A method without an
entry is refused for everybody (so a new RPC is closed until someone decides who may call it; a test
enumerates every method of every `callscribe.v1` service and fails on one without an entry).

The roles, each including what the one before it reads:
- `uploader`: a call-center system: uploads recordings and reads their status.
- `analyst`: searches and reads transcripts (redacted text once redaction exists), exports calls, reads
  recording status.
- `supervisor`: what an analyst may, plus playing audio and reading unredacted text (those RPCs do not
  exist yet: today a supervisor may exactly what an analyst may).
- `admin`: everything a tenant may: legal holds, dead letters, erasure, lifecycle runs, the access trail,
  the VAD and ASR services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

UPLOADER = "uploader"
ANALYST = "analyst"
SUPERVISOR = "supervisor"
ADMIN = "admin"
# The roles a token in the tenants file may carry, least to most.
ROLES: tuple[str, ...] = (UPLOADER, ANALYST, SUPERVISOR, ADMIN)
# The pipeline's service accounts (worker, lifecycle): never a token's role, only theirs.
SERVICE = "service"

_STATUS = frozenset({UPLOADER, ANALYST, SUPERVISOR, ADMIN, SERVICE})  # reading a recording's status
_READ = frozenset({ANALYST, SUPERVISOR, ADMIN})  # search, transcripts, exports
_ADMIN = frozenset({ADMIN})
_PIPELINE = frozenset({SERVICE})  # writes of the index: the pipeline only
_OPERATE = frozenset({ADMIN, SERVICE})  # the models and the lifecycle runs

_INGEST = "/callscribe.v1.IngestService/"
_INDEXER = "/callscribe.v1.IndexerService/"
_LIFECYCLE = "/callscribe.v1.LifecycleService/"

# Full gRPC method name -> the roles that may call it. THE table: nothing else decides.
ALLOWED: Mapping[str, frozenset[str]] = {
    _INGEST + "UploadRecording": frozenset({UPLOADER, ADMIN}),
    _INGEST + "GetRecording": _STATUS,
    _INGEST + "ListRecordings": _STATUS,
    _INGEST + "SetLegalHold": _ADMIN,
    _INGEST + "ListDeadLetters": _ADMIN,
    _INGEST + "RequeueDeadLetters": _ADMIN,
    _INGEST + "VerifyTrail": _ADMIN,
    _INGEST + "ReadTrail": _ADMIN,
    _INDEXER + "IndexCall": _PIPELINE,
    _INDEXER + "Search": _READ,
    _INDEXER + "GetCall": _READ,
    _INDEXER + "ExportCalls": _READ,
    _INDEXER + "PreviewRedaction": _READ,  # what the tenant's policy would store for a text (a DPO's check)
    _INDEXER + "FindIndexed": _READ | {SERVICE},
    _INDEXER + "UpdateStorage": _PIPELINE,
    _INDEXER + "DeleteCall": _PIPELINE,
    _LIFECYCLE + "RunTiering": _OPERATE,
    _LIFECYCLE + "RunAudit": _OPERATE,
    _LIFECYCLE + "RunExpiry": _OPERATE,
    _LIFECYCLE + "EraseRecording": _ADMIN,
    _LIFECYCLE + "EraseCustomer": _ADMIN,
    # VAD and ASR read archived audio (ASR returns its unredacted text) and write no access-trail entry:
    # the pipeline and admins only.
    "/callscribe.v1.VadService/DetectSpeech": _OPERATE,
    "/callscribe.v1.AsrService/Transcribe": _OPERATE,
    "/callscribe.v1.AsrService/TranscribeStream": _OPERATE,
}


@dataclass(frozen=True)
class Actor:
    """Who made a call, as the access trail records it: a tenant token (its name in the tenants file and its
    role) or a service account (its name, role `service`)."""

    kind: str  # "token" or "service_account"
    name: str
    role: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "role": self.role}


def allowed_roles(method: str) -> frozenset[str]:
    """The roles that may call `method` (a full name, "/package.Service/Method"); empty: nobody."""
    return ALLOWED.get(method, frozenset())


def refusal(method: str, actor: Actor) -> str | None:
    """Why `actor` may not call `method` (a message for the caller), or None when it may."""
    roles = allowed_roles(method)
    if actor.role in roles:
        return None
    name = method.rsplit("/", 1)[-1]
    if not roles:
        return f"{name} is not in the role table (callscribe.kit.roles): nobody may call it"
    who = (
        f"service account {actor.name!r} (role {SERVICE!r})"
        if actor.kind == "service_account"
        else f"your token ({actor.name}) has role {actor.role!r}"
    )
    if roles == _PIPELINE:
        return f"{name} is for the pipeline's service account only; {who}"
    needed = [role for role in ROLES if role in roles]
    if len(needed) == 1:
        wanted = f"role {needed[0]!r}"
    else:
        wanted = "role " + ", ".join(repr(r) for r in needed[:-1]) + f" or {needed[-1]!r}"
    return f"{name} needs {wanted}; {who}"
