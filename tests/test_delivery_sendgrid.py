"""The SendGrid request body, and the fake server's checks of SendGrid's limits (which must be able
to fail: a fake that accepts anything proves nothing)."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest

from digest.delivery.providers.sendgrid_api import SendGridProvider, SendGridRequestBuilder, retry_after_seconds
from digest.email.message import OutgoingIssue, Recipient
from digest.errors import ConfigError, FailureKind, ProviderError
from tests.fakes.sendgrid import FakeSendGrid, validate

ISSUE = OutgoingIssue(
    issue_id=7,
    slug="2026-w48",
    subject="The Meridian Review: Zürich talks",
    html='<p>Hello %%first_name%%,</p><a href="%%unsubscribe_url%%">Unsubscribe</a>',
    text="Hello %%first_name%%,\nUnsubscribe: %%unsubscribe_url%%\n",
    from_email="weekly@meridian-review.example.org",
    from_name="The Meridian Review",
    reply_to="editors@meridian-review.example.org",
    unsubscribe_mailto="unsubscribe@meridian-review.example.org",
)


def recipient(i: int, name: str | None = None) -> Recipient:
    url = f"https://news.example.org/unsubscribe/token{i}"
    values = {
        "unsubscribe_url": url,
        "preferences_url": f"https://news.example.org/p/{i}",
        "first_name": name or "there",
    }
    return Recipient(i, f"r{i}@example.org", name, values, url)


def test_one_personalization_per_recipient_in_order_with_their_own_values():
    builder = SendGridRequestBuilder(ISSUE, categories=["weekly-digest"], asm_group_id=42)
    body = builder.body([recipient(i) for i in range(1, 4)] + [recipient(4, "Tom & <Jerry>")], batch_id=99)
    assert validate(body) == []
    assert [p["to"][0]["email"] for p in body["personalizations"]] == [f"r{i}@example.org" for i in range(1, 5)]
    last = body["personalizations"][-1]
    # Text gets the value as it is; HTML its escaped twin, so a name cannot inject markup.
    assert last["substitutions"]["%%first_name%%"] == "Tom & <Jerry>"
    assert last["substitutions"]["%%first_name__html%%"] == "Tom &amp; &lt;Jerry&gt;"
    assert "%%first_name__html%%" in body["content"][1]["value"] and "%%first_name%%" in body["content"][0]["value"]
    assert last["headers"] == {
        "List-Unsubscribe": "<https://news.example.org/unsubscribe/token4>, "
        "<mailto:unsubscribe@meridian-review.example.org?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert last["custom_args"] == {"issue_id": "7", "batch_id": "99"}  # ids only, no personal data
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["from"] == {"email": "weekly@meridian-review.example.org", "name": "The Meridian Review"}
    assert body["reply_to"] == {"email": "editors@meridian-review.example.org"}
    assert body["categories"] == ["weekly-digest"] and body["asm"] == {"group_id": 42}


def test_the_body_is_ascii_json_so_non_ascii_text_survives_any_transport(tmp_path):
    with FakeSendGrid(keep_bodies=True) as fake:
        provider = SendGridProvider(fake.api_key, host=fake.url)
        provider.send_batch(ISSUE, [recipient(1, "Zoë Ångström")], batch_id=1)
    [accepted] = fake.accepted
    assert accepted.body["subject"] == "The Meridian Review: Zürich talks"
    assert accepted.body["personalizations"][0]["to"][0]["name"] == "Zoë Ångström"
    assert json.dumps(accepted.body).isascii()


def test_an_oversized_substitution_refuses_that_recipient_alone_before_sending():
    huge = recipient(1, "x" * 6000)
    body, refused = SendGridRequestBuilder(ISSUE).build([huge, recipient(2)], batch_id=1)
    assert list(refused) == [1] and "over SendGrid's 10000" in refused[1]
    assert [p["to"][0]["email"] for p in body["personalizations"]] == ["r2@example.org"]
    assert SendGridRequestBuilder(ISSUE).body([huge], batch_id=1) is None  # nobody left: no request at all


def test_two_spellings_of_one_idn_address_go_as_one_recipient_not_a_refused_request():
    unicode_form = Recipient(1, "jose@exämple.org", None, recipient(1).values, recipient(1).unsubscribe_url)
    ascii_form = Recipient(2, "jose@xn--exmple-cua.org", None, recipient(2).values, recipient(2).unsubscribe_url)
    body, refused = SendGridRequestBuilder(ISSUE).build([unicode_form, ascii_form, recipient(3)], batch_id=1)
    assert validate(body) == []
    assert [p["to"][0]["email"] for p in body["personalizations"]] == ["jose@xn--exmple-cua.org", "r3@example.org"]
    assert list(refused) == [2] and "subscriber 1" in refused[2]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b["personalizations"].extend(b["personalizations"][:1] * 1001), "personalizations: 1003 > 1000"),
        (lambda b: b["personalizations"].append(b["personalizations"][0]), "appears twice in one request"),
        (lambda b: b["personalizations"][0]["headers"].update({"Subject": "x"}), "Subject is reserved"),
        (lambda b: b.update(categories=[str(i) for i in range(11)]), "more than 10"),
        (lambda b: b["content"].reverse(), "text/plain must come before text/html"),
        (lambda b: b["personalizations"][0]["substitutions"].update({"%%x%%": "y" * 10_001}), "substitutions"),
        (lambda b: b["personalizations"][0]["custom_args"].update({"big": "y" * 10_000}), "custom_args"),
    ],
)
def test_the_fake_refuses_what_sendgrid_refuses(mutate, problem):
    body = SendGridRequestBuilder(ISSUE).body([recipient(1), recipient(2)], batch_id=1)
    mutate(body)
    assert any(problem in p for p in validate(body)), validate(body)


def test_errors_say_how_to_go_on():
    with FakeSendGrid(schedule=[401, 403, 429, 503]) as fake:
        provider = SendGridProvider(fake.api_key, host=fake.url)
        kinds = []
        for _ in range(4):
            with pytest.raises(ProviderError) as caught:
                provider.send_batch(ISSUE, [recipient(1)], batch_id=1)
            kinds.append((caught.value.kind, str(caught.value)))
    assert kinds[0][0] is FailureKind.STOP and "check DIGEST_SENDGRID_API_KEY" in kinds[0][1]
    assert kinds[1][0] is FailureKind.REFUSED and "from.email: The from address does not match" in kinds[1][1]
    assert kinds[2][0] is FailureKind.RATE_LIMITED
    assert kinds[3][0] is FailureKind.TRANSIENT


def test_retry_after_prefers_the_reset_time_then_retry_after():
    assert retry_after_seconds({"X-RateLimit-Reset": "1010"}, now=1000.0) == 10.0
    assert retry_after_seconds({"Retry-After": "4"}, now=1000.0) == 4.0
    assert retry_after_seconds({}, now=1000.0) is None


def test_a_transactional_message_is_one_personalization():
    message = EmailMessage()
    message["From"] = "The Meridian Review <weekly@meridian-review.example.org>"
    message["To"] = "New Reader <new.reader@example.org>"
    message["Subject"] = "Confirm your subscription"
    message["X-Entity-Ref-ID"] = "confirm-1"
    message.set_content("Confirm: https://news.example.org/confirm/abc")
    message.add_alternative('<a href="https://news.example.org/confirm/abc">Confirm</a>', subtype="html")
    with FakeSendGrid(keep_bodies=True) as fake:
        message_id = SendGridProvider(fake.api_key, host=fake.url).send_transactional(message)
    [accepted] = fake.accepted
    assert message_id == accepted.message_id
    body = accepted.body
    assert body["personalizations"] == [
        {"to": [{"email": "new.reader@example.org", "name": "New Reader"}], "headers": {"X-Entity-Ref-ID": "confirm-1"}}
    ]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["subject"] == "Confirm your subscription" and fake.violations == []


def test_a_sendgrid_host_that_is_no_http_url_is_refused_with_the_setting_named():
    with pytest.raises(ConfigError, match=r"DIGEST_SENDGRID_API_HOST: an http\(s\) URL is needed, not 'file:///etc'"):
        SendGridProvider("SG.key", host="file:///etc")


def test_a_batch_is_posted_with_the_api_key_and_the_json_made_before_its_turn():
    with FakeSendGrid(keep_bodies=True) as fake:
        provider = SendGridProvider(fake.api_key, host=fake.url)
        send = provider.prepare_batch(ISSUE, [recipient(1), recipient(2)], batch_id=7)
        result = send()
        with pytest.raises(ProviderError, match="refused the API key"):
            SendGridProvider("SG.wrong", host=fake.url).send_batch(ISSUE, [recipient(3)], batch_id=8)
    [accepted] = fake.accepted
    assert set(result.sent) == {1, 2} and set(result.sent.values()) == {accepted.message_id}
    assert [p["custom_args"]["batch_id"] for p in accepted.body["personalizations"]] == ["7", "7"]
