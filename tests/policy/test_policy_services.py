"""One test per service ID of the seed: each checks the sentence of the product page for it.

Every test builds the favourable case (CK, service enabled, licensed owner where needed) and the
case the sentence singles out, and names the seed sentence it checks.
"""

from __future__ import annotations

import pytest

from ownkey.catalog import SERVICE_IDS

from ._helpers import ANN, BO, BOB, CK, HK, PK, keys, org, plan, request


def test_every_service_id_of_the_seed_has_a_test_here() -> None:
    """Keeps this file honest: a new catalog entry needs a test of its own."""
    covered = {part for name in globals() if name.startswith("test_") for part in name.split("_")}
    assert covered >= SERVICE_IDS


def test_0001_recordings_transcripts_summaries_next_steps_and_chat_are_encrypted() -> None:
    """0001: "Cloud meeting and webinar recordings, including transcripts, summaries, and next
    steps, can be encrypted along with in-chat text messages." """
    for component in ("video", "audio", "transcript", "summary", "next_steps", "chat_message"):
        assert keys(request("0001", component, container="meeting")) == [CK("acme")]


def test_0001_polls_q_and_a_surveys_reports_and_file_transfers_are_not_encrypted() -> None:
    """0001: "Polls (Q&A, surveys, and reports) and in-meeting file transfers are not
    encrypted." """
    for component in ("poll", "q_and_a", "survey", "poll_report", "file_transfer"):
        assert keys(request("0001", component, container="meeting")) == [PK]


def test_0010_clip_and_comments_encrypted_but_not_the_custom_avatar() -> None:
    """0010: "The video clip and associated comments (but not the custom avatar) can be
    encrypted." """
    assert keys(request("0010", "video")) == [CK("acme")]
    assert keys(request("0010", "comment")) == [CK("acme")]
    assert keys(request("0010", "custom_avatar")) == [PK]


def test_0011_whiteboards_created_by_licensed_users_can_be_encrypted() -> None:
    """0011: "Whiteboards (drawings, text, images, and comments) created by licensed users can be
    encrypted." """
    for component in ("drawing", "text", "image", "comment"):
        assert keys(request("0011", component)) == [CK("acme")]
        assert keys(request("0011", component, owner=BOB)) == [PK]


def test_0002_phone_recordings_for_licensed_users_and_all_call_queues() -> None:
    """0002: "Phone recordings, transcripts, and summaries can be encrypted not only for
    individual (licensed) users but also for all call queues." """
    for component in ("recording", "transcript", "summary"):
        assert keys(request("0002", component)) == [CK("acme")]
        assert keys(request("0002", component, owner=BOB)) == [PK]
        assert keys(request("0002", component, owner="q-sales", owner_kind="call_queue")) == [
            CK("acme")
        ]


def test_0003_voicemails_for_licensed_users_and_all_call_queues() -> None:
    """0003: "Voicemail recordings, transcripts, and summaries can be encrypted not only for
    individual (licensed) users but also for all call queues." """
    for component in ("recording", "transcript", "summary"):
        assert keys(request("0003", component)) == [CK("acme")]
        assert keys(request("0003", component, owner=BOB)) == [PK]
        assert keys(request("0003", component, owner=None, owner_kind="call_queue")) == [CK("acme")]


def test_0006_compliance_archives_encrypted_if_compliance_archival_is_enabled() -> None:
    """0006: "If compliance archival is enabled, meetings, webinars, phone recordings, and in-chat
    messages can be encrypted." """
    on = {"acme": org("0006", compliance_archival=True)}
    off = {"acme": org("0006", compliance_archival=False)}
    for component in ("meeting", "webinar", "phone_recording", "chat_message"):
        assert keys(request("0006", component, owner=None, owner_kind="account", orgs=on)) == [
            CK("acme")
        ]
        assert keys(request("0006", component, owner=None, owner_kind="account", orgs=off)) == [PK]


def test_0009_mms_text_pictures_and_video_can_be_encrypted() -> None:
    """0009: "MMS (multimedia messaging service), including text, pictures, and video, can be
    encrypted." """
    for component in ("text", "picture", "video"):
        assert keys(request("0009", component)) == [CK("acme")]


def test_0004_the_token_the_client_uses_for_calendaring_can_be_encrypted() -> None:
    """0004: "The token or password the Zoom client uses to access Google or Microsoft
    calendaring can be encrypted." """
    assert keys(request("0004", "token")) == [CK("acme")]
    assert keys(request("0004", "token", owner=BOB)) == [PK]


def test_0005_the_token_zoom_room_uses_for_calendaring_is_encrypted() -> None:
    """0005: "The token or password Zoom Room uses to access Google or Microsoft calendaring is
    encrypted." (a room needs no licence)"""
    assert keys(request("0005", "token", owner="room-7", owner_kind="room")) == [CK("acme")]


def test_0007_other_access_tokens_such_as_for_teams_can_be_encrypted() -> None:
    """0007: "Other access tokens, such as for Microsoft Teams, can be encrypted." """
    assert keys(request("0007", "token")) == [CK("acme")]
    assert keys(request("0007", "token", owner=None, owner_kind="account")) == [CK("acme")]


def test_0008_messages_files_emojis_attachments_encrypted_if_any_member_is_licensed() -> None:
    """0008: "All messages, files, emojis, and attachments can be encrypted if any member of the
    channel or chat is a CMK-licensed user" """
    for component in ("message", "file", "emoji", "attachment"):
        req = request("0008", component, owner=BOB, container="chat", members=((ANN, "acme"),))
        assert keys(req) == [CK("acme")]
        alone = request("0008", component, owner=BOB, container="chat")
        assert keys(alone) == [PK]


def test_0008_reactions_and_giphys_are_not_encrypted() -> None:
    """0008: "Reaction emojis and giphys (and the associated URLs) will not be encrypted, as they
    are static resources." """
    for component in ("reaction", "giphy"):
        assert keys(request("0008", component, container="channel")) == [PK]


def test_0012_revenue_accelerator_analytical_data_can_be_encrypted() -> None:
    """0012: "Analytical data such as thumbnails, OCR data, transcripts, meeting highlights, and
    certain AI-generated data." """
    for component in ("thumbnail", "ocr_data", "transcript", "highlight", "ai_generated"):
        assert keys(request("0012", component)) == [CK("acme")]


def test_0013_events_meetings_webinars_and_content_library_uploads() -> None:
    """0013: "Meetings/Webinar, Uploads to Content Library" """
    for component in ("meeting", "webinar", "upload"):
        assert keys(request("0013", component, container="meeting")) == [CK("acme")]


def test_0017_notes_content_but_not_my_notes() -> None:
    """0017: "Content generated using Zoom Notes. Note: This does not include content from My
    Notes." """
    assert keys(request("0017", "note")) == [CK("acme")]
    assert keys(request("0017", "my_note")) == [PK]


def test_0018_content_generated_using_zoom_docs() -> None:
    """0018: "Content generated using Zoom Docs." """
    assert keys(request("0018", "doc")) == [CK("acme")]


def test_9999_personal_identifiers_need_no_enabling_and_ignore_licensing() -> None:
    """9999: "This category does not need to be enabled; the data is CMK-encrypted for the whole
    account regardless of whether a user has licensed CMK or not." """
    orgs = {"acme": org()}  # nothing enabled, nobody licensed
    for component in ("picture", "identifier"):
        assert keys(request("9999", component, owner=BOB, orgs=orgs)) == [CK("acme")]
        assert keys(request("9999", component, owner="r1", owner_kind="room", orgs=orgs)) == [
            CK("acme")
        ]


@pytest.mark.parametrize(
    ("service_id", "components"),
    [
        ("0014", ("recording", "transcript")),
        ("0015", ("voicemail", "transcript")),
        ("0025", ("transcript", "file")),
    ],
)
def test_0014_0015_0025_contact_center_recordings_voicemails_and_emails(
    service_id: str, components: tuple[str, ...]
) -> None:
    """0014: "Call recordings and recording transcripts for calls made through Zoom Contact
    Center." 0015: "Voicemail and voicemail transcripts ..." 0025: "Transcripts and attachments
    for emails sent through Zoom Contact Center." """
    for component in components:
        assert keys(request(service_id, component)) == [CK("acme")]
        assert keys(request(service_id, component, owner="q", owner_kind="call_queue")) == [
            CK("acme")
        ]


def test_0016_sms_transcripts_but_not_social_channel_and_sms_attachments() -> None:
    """0016: "Transcripts for SMS messages sent through Zoom Contact Center. Note: Does not
    include attachments from social channels and SMS." """
    assert keys(request("0016", "transcript")) == [CK("acme")]
    assert keys(request("0016", "attachment")) == [PK]


@pytest.mark.parametrize(
    ("service_id", "component"),
    [("0019", "prompt"), ("0019", "response"), ("0020", "file"), ("0021", "email")],
)
def test_0019_0020_0021_ai_companion_conversations_files_and_emails(
    service_id: str, component: str
) -> None:
    """0019: "Prompt and responses in the AI Companion side panel." 0020: "Files uploaded to AI
    Companion." 0021: "Emails generated in Zoom Mail utilizing the AI Companion Email compose
    feature." """
    assert keys(request(service_id, component)) == [CK("acme")]
    third = plan(request(service_id, component, third_party_model=True))
    assert third["keys"] == [CK("acme")]
    assert third["third_party_egress"] is True


@pytest.mark.parametrize(("service_id", "component"), [("0022", "file"), ("0023", "credential")])
def test_0022_0023_custom_ai_files_and_connector_credentials(
    service_id: str, component: str
) -> None:
    """0022: "Files uploaded to Custom AI Companion." 0023: "Credentials are utilized for
    third-party connectors with Custom AI Companion." """
    assert keys(request(service_id, component)) == [CK("acme")]
    assert keys(request(service_id, component, owner=None, owner_kind="account")) == [CK("acme")]


def test_1001_hybrid_chat_data_is_client_side_encrypted() -> None:
    """1001: "Client-side encrypted chat messages managed via Team Chat hybrid." """
    orgs = {"acme": org(hybrid=True), "globex": org()}
    result = plan(
        request("1001", "message", orgs=orgs, container="chat", members=((BO, "globex"),))
    )
    assert result["protection"] == "client_side"
    assert result["keys"] == [HK("acme")]
