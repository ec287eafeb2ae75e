"""The API's JSON renderer (orjson) gives the bytes DRF's JSONRenderer gives, for what our
views return and for generated data; what orjson cannot encode still renders as DRF would."""

import datetime
import json

import pytest
from django.utils.translation import gettext_lazy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer

from crm.api.renderers import JSONRenderer

from .factories import ConversationFactory, MessageFactory

ours, drf = JSONRenderer(), DRFJSONRenderer()

# Everything but floats renders byte for byte alike (floats: `1e+16` and `1e16` are one number).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text()  # any code point but lone surrogates, U+2028/U+2029 and NUL included
    | st.datetimes(timezones=st.just(datetime.UTC) | st.none())
    | st.dates()
    | st.times()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.timedeltas()
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_generated_documents_render_as_drf_renders_them(document):
    assert ours.render(document) == drf.render(document)


@given(st.recursive(st.floats(allow_nan=False, allow_infinity=False), st.lists, max_leaves=10))
def test_floats_render_as_the_same_numbers(document):
    assert json.loads(ours.render(document)) == json.loads(drf.render(document))


@pytest.mark.parametrize(
    "document",
    [
        {1: "a key that is not a string"},
        {"big": 2**70},
        {"lazy": gettext_lazy("Not found.")},
        {"set": frozenset()},
        {"line": "a\u2028b\u2029c"},
        None,
    ],
    ids=["int-key", "big-int", "lazy", "frozenset", "separators", "none"],
)
def test_what_orjson_leaves_to_drf_renders_as_drf(document):
    assert ours.render(document) == drf.render(document)


def test_a_pretty_printed_answer_is_drfs():
    document = {"a": [1, {"b": "ж"}]}
    accepted = "application/json; indent=4"
    assert ours.render(document, accepted) == drf.render(document, accepted)
    assert b"\n    " in ours.render(document, accepted)


def test_an_unencodable_value_fails_as_in_drf():
    with pytest.raises(TypeError):
        drf.render({"x": object()})
    with pytest.raises(TypeError):
        ours.render({"x": object()})


@pytest.mark.django_db
def test_the_apis_answers_are_drfs_bytes(api_for, agent_user):
    """The conversation list, a conversation, its messages and a 400 (Cyrillic, a line
    separator in a name, dates) come out exactly as DRF would have rendered them."""
    api = api_for(agent_user)
    conversation = ConversationFactory(
        company=agent_user.company, client__name="Олена\u2028Коваль", unread_count=1
    )
    MessageFactory(conversation=conversation, body="Добрий день! ✓")
    for url in (
        "/api/v1/conversations/",
        f"/api/v1/conversations/{conversation.pk}/",
        f"/api/v1/conversations/{conversation.pk}/messages/",
        "/api/v1/conversations/?status=bogus",
    ):
        response = api.get(url, HTTP_ACCEPT="application/json")
        assert response["Content-Type"] == "application/json", url
        assert response.content == drf.render(response.data), url
    assert b"\\u2028" in api.get("/api/v1/conversations/").content
    assert "status" in api.get("/api/v1/conversations/?status=bogus").json()


def test_a_float_json_cannot_hold_becomes_null():
    """DRF's strict JSON raised on NaN (a 500); the answer now carries null."""
    assert ours.render({"x": float("nan"), "y": float("inf")}) == b'{"x":null,"y":null}'
