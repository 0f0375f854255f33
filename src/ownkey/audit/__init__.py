"""Audit port: events for every key-manager call, admin change and denial. Pure core.

:class:`AuditSink` is the port (the SQL sink with its hash chain plugs in behind it);
:class:`Auditor` records through it and fails closed with
:class:`~ownkey.errors.AuditUnavailable` when the sink cannot write.
"""

from ownkey.audit._events import AuditAction, AuditEvent, Outcome
from ownkey.audit._sink import Auditor, AuditSink, MemoryAuditSink

__all__ = ["AuditAction", "AuditEvent", "AuditSink", "Auditor", "MemoryAuditSink", "Outcome"]
