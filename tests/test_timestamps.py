"""Timestamps come back from PostgreSQL as the instants that were written, whichever loader
parses them: crm.db's hands the parsing to psycopg's C loader while the session speaks UTC
(as Django sets it), and is Django's own loader otherwise."""

import datetime as dt

import pytest
from django.db import connection
from django.db.backends.postgresql import psycopg_any
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.pq import Format

from crm.db.base import OPTIMISED_TIMESTAMPTZ_LOADER, TIMESTAMPTZ_OID, TimestampLoader
from messaging.models import Conversation
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

ZONES = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-3)),
]
instants = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from(ZONES),
)
same_examples = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class DjangoUtcLoader(psycopg_any.BaseTzLoader):
    """The loader Django 5.2 registers for its UTC connections."""

    timezone = dt.UTC


def django_loader():
    return DjangoUtcLoader(TIMESTAMPTZ_OID, connection.connection)


def as_text(instant: dt.datetime) -> bytes:
    """The bytes PostgreSQL sends for `instant` in the session's zone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz::text", [instant])
        return cursor.fetchone()[0].encode()


@pytest.fixture
def session_zone():
    """Sets the session's zone for one test; puts UTC back after it."""
    connection.ensure_connection()

    def set_zone(name: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('TimeZone', %s, false)", [name])

    yield set_zone
    set_zone("UTC")


def test_the_connection_reads_timestamps_with_the_c_loader_while_the_session_speaks_utc():
    connection.ensure_connection()
    loader_class = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    assert issubclass(loader_class, TimestampLoader)
    assert loader_class.timezone is dt.UTC  # what Django's cursors compare with
    loader = loader_class(TIMESTAMPTZ_OID, connection.connection)
    assert isinstance(loader.load.__self__, OPTIMISED_TIMESTAMPTZ_LOADER)


@same_examples
@given(instant=instants)
def test_a_stored_timestamp_reads_back_as_the_same_instant_in_utc(instant):
    conversation = ConversationFactory(last_message_at=instant)
    read = Conversation.objects.values_list("last_message_at", flat=True).get(pk=conversation.pk)
    assert read == instant
    assert read.utcoffset() == dt.timedelta(0)
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    fast = loader(TIMESTAMPTZ_OID, connection.connection)
    text = as_text(instant)
    assert fast.load(text) == django_loader().load(text) == instant


@same_examples
@given(instant=instants, zone=st.sampled_from(["Asia/Kolkata", "America/Sao_Paulo"]))
def test_in_another_session_zone_the_loader_is_djangos_own(session_zone, instant, zone):
    session_zone(zone)
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    ours = loader(TIMESTAMPTZ_OID, connection.connection)
    assert not isinstance(getattr(ours.load, "__self__", None), OPTIMISED_TIMESTAMPTZ_LOADER)
    text = as_text(instant)
    assert ours.load(text) == django_loader().load(text)
