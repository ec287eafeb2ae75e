"""Search: message text (full-text, Russian/Ukrainian/English), client names, phones and
email, subjects; the inbox list shows the matched words and opens the conversation at that
message; GET /api/v1/search/ pages message hits; nothing of another company, ever."""

import pytest
from django.db import connection

from .factories import ClientFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _conversation(company, name="Ann Smith", phone="+4915123456789", **kwargs):
    return ConversationFactory(
        company=company, client=ClientFactory(company=company, name=name, phone=phone), **kwargs
    )


def _search_ids(api, q, **params):
    response = api.get("/api/v1/search/", {"q": q, **params})
    assert response.status_code == 200, response.content
    return [hit["id"] for hit in response.json()["results"]]


def test_message_text_in_three_languages_is_found_by_its_word_forms(admin_api, company):
    conversation = _conversation(company)
    english = MessageFactory(conversation=conversation, body="We are shipping your orders.")
    russian = MessageFactory(conversation=conversation, body="Доставка в Гамбург завтра утром")
    ukrainian = MessageFactory(conversation=conversation, body="Привіт! Доставка до Києва?")
    MessageFactory(conversation=conversation, body="Nothing to see here")

    assert _search_ids(admin_api, "order") == [english.pk]  # English stem: orders
    assert _search_ids(admin_api, "shipped") == [english.pk]
    assert _search_ids(admin_api, "гамбурга") == [russian.pk]  # Russian stem
    assert _search_ids(admin_api, "Києва") == [ukrainian.pk]  # as written
    assert _search_ids(admin_api, "прив") == [ukrainian.pk]  # the start of a word
    assert set(_search_ids(admin_api, "доставка")) == {russian.pk, ukrainian.pk}
    assert _search_ids(admin_api, "доставка завтра") == [russian.pk]  # every word
    assert _search_ids(admin_api, "hamburg") == []  # Latin letters: another word


def test_the_hit_shows_the_matched_words_escaped_and_links_to_the_message(admin_api, company):
    conversation = _conversation(company)
    message = MessageFactory(
        conversation=conversation,
        body='Delivery to Hamburg <script>alert("x")</script> &amp; \ue000 soon',
    )

    hit = admin_api.get("/api/v1/search/", {"q": "hamburg"}).json()["results"][0]

    assert hit["id"] == message.pk
    assert hit["conversation"]["id"] == conversation.pk
    assert hit["conversation"]["client"]["name"] == "Ann Smith"
    assert "<mark>Hamburg</mark>" in hit["snippet_html"]
    # The parser drops what looks like a tag from the excerpt; the rest is escaped.
    assert "<script" not in hit["snippet_html"]
    assert "alert(&quot;x&quot;)" in hit["snippet_html"]
    assert "&amp;amp;" in hit["snippet_html"]
    assert hit["snippet_html"].count("<mark>") == hit["snippet_html"].count("</mark>") == 1
    assert hit["url"] == f"/inbox/{conversation.pk}/?message={message.pk}#message-{message.pk}"


def test_search_never_returns_another_companys_messages(admin_api, company, other_company):
    mine = MessageFactory(conversation=_conversation(company), body="Hamburg invoice")
    MessageFactory(conversation=_conversation(other_company), body="Hamburg invoice")

    assert _search_ids(admin_api, "hamburg") == [mine.pk]
    listed = admin_api.get("/api/v1/conversations/", {"q": "hamburg"}).json()["results"]
    assert [row["id"] for row in listed] == [mine.conversation_id]


def test_results_page_with_a_cursor(admin_api, company):
    conversation = _conversation(company)
    messages = [MessageFactory(conversation=conversation, body=f"Hamburg {n}") for n in range(5)]

    first = admin_api.get("/api/v1/search/", {"q": "hamburg", "page_size": 2}).json()
    second = admin_api.get(first["next"]).json()
    third = admin_api.get(second["next"]).json()

    seen = [hit["id"] for page in (first, second, third) for hit in page["results"]]
    assert seen == [message.pk for message in reversed(messages)]
    assert third["next"] is None


@pytest.mark.parametrize(
    "q",
    ["", "   ", "!!!", "\x00", "a\x00b:* & | !", "'); DROP TABLE x; --", "x" * 201, "%_"],
)
def test_odd_queries_are_a_400_naming_q_or_empty_never_a_500(admin_api, company, q):
    MessageFactory(conversation=_conversation(company), body="a b")
    response = admin_api.get("/api/v1/search/", {"q": q})
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "q" in response.json()
    listed = admin_api.get("/api/v1/conversations/", {"q": q})
    assert listed.status_code in (200, 400)


def test_tsquery_syntax_in_the_query_is_just_words(admin_api, company):
    message = MessageFactory(conversation=_conversation(company), body="Order 4711 for Hamburg")
    assert _search_ids(admin_api, "hamburg:* & !order | (4711") == [message.pk]


def test_conversation_list_q_finds_message_text_names_partial_phones_email_and_subject(
    admin_api, company
):
    by_text = _conversation(company, name="Zed", phone="+4917000000001")
    MessageFactory(conversation=by_text, body="My parcel is stuck in Hamburg since Monday")
    by_name = _conversation(company, name="Олена Коваленко", phone="+380671234567")
    by_phone = _conversation(company, name="Pat", phone="+4915198765432")
    by_email = ConversationFactory(
        company=company, client=ClientFactory(company=company, email="kim@firma.example")
    )
    by_subject = _conversation(company, name="Sam", phone="", subject="Invoice 2026-17 overdue")

    def found(q):
        rows = admin_api.get("/api/v1/conversations/", {"q": q}).json()["results"]
        return {row["id"] for row in rows}

    assert found("hamburg") == {by_text.pk}
    assert found("коваленко") == {by_name.pk}
    assert found("олен") == {by_name.pk}
    assert found("98765") == {by_phone.pk}  # digits from the middle of the number
    assert found("151 987") == {by_phone.pk}  # spaces as people type them
    assert found("firma.example") == {by_email.pk}
    assert found("overdue") == {by_subject.pk}


def test_the_inbox_list_shows_the_matched_message_and_opens_the_conversation_there(
    client, admin_user, company
):
    conversation = _conversation(company)
    hit = MessageFactory(conversation=conversation, body="Parcel <b>stuck</b> in Hamburg")
    for n in range(80):  # the hit is older than the newest page of the thread
        MessageFactory(conversation=conversation, body=f"later message {n}")
    client.force_login(admin_user)

    page = client.get("/inbox/", {"q": "hamburg"}).content.decode()
    assert "<mark>Hamburg</mark>" in page
    assert "<b>stuck" not in page
    assert f"message={hit.pk}#message-{hit.pk}" in page

    thread = client.get(f"/inbox/{conversation.pk}/", {"q": "hamburg", "message": hit.pk})
    html = thread.content.decode()
    assert f'id="message-{hit.pk}"' in html
    assert "is-search-hit" in html
    assert html.count('class="msg ') >= 81  # from the hit down to the newest

    # Someone else's (or a bogus) message id just opens the conversation as usual.
    for bogus in ("999999", "x"):
        assert client.get(f"/inbox/{conversation.pk}/", {"message": bogus}).status_code == 200
    assert client.get(f"/inbox/{conversation.pk}/", {"message": "\x00"}).status_code == 400


def test_the_message_search_uses_the_full_text_index(company, admin_user):
    from inbox_search.selectors import message_hits

    conversation = _conversation(company)
    for n in range(50):
        MessageFactory(conversation=conversation, body=f"filler text number {n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
        # Small tables: ask for the plan a big one gets (no whole-table or whole-index walk).
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_indexscan = off")
        sql, params = message_hits(admin_user, "hamburg").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_indexscan")
    assert "msg_body_fts_idx" in plan


def test_a_common_word_walks_the_inbox_order_and_still_finds_message_text(
    admin_api, company, monkeypatch
):
    from messaging.selectors import inbox

    monkeypatch.setattr(inbox, "SEARCH_CANDIDATES", 0)  # as if thousands matched
    conversation = _conversation(company)
    MessageFactory(conversation=conversation, body="Hamburg again")
    rows = admin_api.get("/api/v1/conversations/", {"q": "hamburg"}).json()["results"]
    assert [row["id"] for row in rows] == [conversation.pk]


def test_a_phone_fragment_many_numbers_share_walks_the_inbox_and_finds_only_those(
    admin_api, company, other_company, monkeypatch
):
    """As in a big inbox where a fragment ("151 0") is in thousands of numbers: the inbox is
    walked newest first and each conversation's own client checked (no list of every match)."""
    from messaging.selectors import inbox

    monkeypatch.setattr(inbox, "SEARCH_CANDIDATES", 1)
    first = _conversation(company, name="Pat", phone="+4915101234567")
    second = _conversation(company, name="Kim", phone="+4915109876543")
    _conversation(company, name="Lou", phone="+380671234567")  # no "1510" in it
    _conversation(other_company, name="Pat", phone="+4915101234567")  # another company's

    def found(q):
        response = admin_api.get("/api/v1/conversations/", {"q": q})
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert found("151 0") == {first.pk, second.pk}
    assert found("+49 151-0") == {first.pk, second.pk}
    assert found("Pat") == {first.pk}
    assert found("0123") == {first.pk}  # one match: by its id, as before


@pytest.mark.parametrize("common", [False, True])
def test_a_common_word_by_the_statistics_is_still_found_in_message_text(
    admin_api, company, other_company, monkeypatch, common
):
    """When PostgreSQL's estimate says a word is in many messages, the text is checked while
    walking the inbox instead of listing every match first: same conversations found."""
    from messaging.selectors import inbox

    monkeypatch.setattr(inbox, "SEARCH_TEXT_CANDIDATES", 0)
    if common:  # in a good share of all messages: each conversation's messages checked
        monkeypatch.setattr(inbox, "SEARCH_TEXT_COMMON", 0)
    hamburg = _conversation(company, name="Zed", phone="+4917000000001")
    MessageFactory(conversation=hamburg, body="My parcel is stuck in Hamburg")
    by_name = _conversation(company, name="Hamburg Shipping", phone="+4917000000002")
    _conversation(company, name="Other", phone="+4917000000003")
    theirs = _conversation(other_company, name="Zed", phone="+4917000000001")
    MessageFactory(conversation=theirs, body="Hamburg too")
    rows = admin_api.get("/api/v1/conversations/", {"q": "hamburg"}).json()["results"]
    assert {row["id"] for row in rows} == {hamburg.pk, by_name.pk}


def test_the_estimate_of_matching_messages_follows_the_statistics(company):
    from inbox_search.fts import estimated_matches

    conversation = _conversation(company)
    for n in range(300):
        MessageFactory(conversation=conversation, body=f"invoice reminder {n}")
    MessageFactory(conversation=conversation, body="Hamburg once")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
    assert estimated_matches("invoice") > estimated_matches("hamburg")
    assert estimated_matches("!!!") == 0  # no word: nothing to estimate, no query


def test_message_search_keeps_to_the_conversations_a_restricted_agent_sees(
    api_for, company, agent_user, admin_user
):
    company.agents_see_all_conversations = False
    company.save()
    mine = _conversation(company, assignee=agent_user)
    unassigned = _conversation(company, name="Una", phone="+4917000000009")
    theirs = _conversation(company, name="Col", phone="+4917000000008", assignee=admin_user)
    hits = {
        conversation.pk: MessageFactory(conversation=conversation, body="Hamburg parcel").pk
        for conversation in (mine, unassigned, theirs)
    }
    agent = api_for(agent_user)
    response = agent.get("/api/v1/search/", {"q": "hamburg"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert {hit["id"] for hit in results} == {hits[mine.pk], hits[unassigned.pk]}
    by_id = {hit["conversation"]["id"]: hit for hit in results}
    assert by_id[mine.pk]["conversation"]["client"]["name"] == "Ann Smith"
    assert by_id[mine.pk]["snippet_html"] == "<mark>Hamburg</mark> parcel"
    assert {
        hit["id"]
        for hit in api_for(admin_user).get("/api/v1/search/", {"q": "hamburg"}).json()["results"]
    } == set(hits.values())
