"""Storage: the only package that talks to the database (SQLAlchemy 2 Core, Alembic).

One method per use case; each returns models, never rows. Writes that belong
together (an ingest run and its papers; a digest and its ledger) happen in one
transaction. Storage gathers one mixin per noun over StorageBase, which holds
the engine, the transactions and the migrations.
"""

from __future__ import annotations

from notifier.storage.base import (
    LEADER_LOCK,
    MIGRATION_LOCK,
    MIGRATIONS,
    SCHEMA_HEAD,
    StorageBase,
)
from notifier.storage.channels import ChannelsMixin
from notifier.storage.digests import DigestsMixin
from notifier.storage.feedback import FeedbackMixin
from notifier.storage.jobs import LATENCY_SCAN, JobsMixin
from notifier.storage.papers import PapersMixin
from notifier.storage.sending import SendingMixin
from notifier.storage.signup import SignupMixin
from notifier.storage.subscribers import SCHEDULE_COLUMNS, SubscribersMixin
from notifier.storage.vectors import VectorsMixin

__all__ = [
    "LATENCY_SCAN",
    "LEADER_LOCK",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "SCHEDULE_COLUMNS",
    "SCHEMA_HEAD",
    "Storage",
    "StorageBase",
]


class Storage(
    PapersMixin,
    SignupMixin,
    SubscribersMixin,
    VectorsMixin,
    FeedbackMixin,
    DigestsMixin,
    ChannelsMixin,
    SendingMixin,
    JobsMixin,
    StorageBase,
):
    """Notifier's tables behind one method per use case."""
