"""The 25 asset types of the seed, in the seed's order, as data.

Each ``seed`` string quotes the product page (``seed/cmk-protected-content.txt``); the component
names are the policy's vocabulary. Who may own what is not in the seed: it is read from the wording
("individual (licensed) users ... call queues", "Zoom Room", "compliance archival") and written
down in ``docs/policy.md``.
"""

from __future__ import annotations

from ownkey.catalog._model import AssetType, ContainerKind, Group, OwnerKind

__all__ = ["ASSET_TYPES"]

_USER = frozenset({OwnerKind.USER})
_USER_OR_QUEUE = frozenset({OwnerKind.USER, OwnerKind.CALL_QUEUE})
_USER_OR_ACCOUNT = frozenset({OwnerKind.USER, OwnerKind.ACCOUNT})
_CONTACT_CENTER = frozenset({OwnerKind.USER, OwnerKind.CALL_QUEUE, OwnerKind.ACCOUNT})
_ANYONE = frozenset(OwnerKind)
_CHAT = frozenset({ContainerKind.CHAT, ContainerKind.CHANNEL})

ASSET_TYPES: tuple[AssetType, ...] = (
    AssetType(
        "0001",
        "Meeting/webinar recordings",
        Group.INTERNAL,
        "Cloud meeting and webinar recordings, including transcripts, summaries, and next steps, "
        "can be encrypted along with in-chat text messages.",
        included=("video", "audio", "transcript", "summary", "next_steps", "chat_message"),
        excluded=("poll", "q_and_a", "survey", "poll_report", "file_transfer"),
        excluded_note="Polls (Q&A, surveys, and reports) and in-meeting file transfers are not "
        "encrypted.",
        licence_holder="meeting organiser",
        ai_generated=frozenset({"summary", "next_steps"}),
    ),
    AssetType(
        "0010",
        "Clips",
        Group.INTERNAL,
        "The video clip and associated comments (but not the custom avatar) can be encrypted.",
        included=("video", "comment"),
        excluded=("custom_avatar",),
        excluded_note="but not the custom avatar",
    ),
    AssetType(
        "0011",
        "Whiteboards",
        Group.INTERNAL,
        "Whiteboards (drawings, text, images, and comments) created by licensed users can be "
        "encrypted.",
        included=("drawing", "text", "image", "comment"),
        licence_holder="creator",
    ),
    AssetType(
        "0002",
        "Phone recordings",
        Group.INTERNAL,
        "Phone recordings, transcripts, and summaries can be encrypted not only for individual "
        "(licensed) users but also for all call queues.",
        included=("recording", "transcript", "summary"),
        owner_kinds=_USER_OR_QUEUE,
        ai_generated=frozenset({"summary"}),
    ),
    AssetType(
        "0003",
        "Phone voicemails",
        Group.INTERNAL,
        "Voicemail recordings, transcripts, and summaries can be encrypted not only for "
        "individual (licensed) users but also for all call queues.",
        included=("recording", "transcript", "summary"),
        owner_kinds=_USER_OR_QUEUE,
        ai_generated=frozenset({"summary"}),
    ),
    AssetType(
        "0006",
        "Compliance archives",
        Group.INTERNAL,
        "If compliance archival is enabled, meetings, webinars, phone recordings, and in-chat "
        "messages can be encrypted.",
        included=("meeting", "webinar", "phone_recording", "chat_message"),
        owner_kinds=frozenset({OwnerKind.ACCOUNT}),
        requires_setting="compliance_archival",
    ),
    AssetType(
        "0009",
        "Phone MMS messages",
        Group.INTERNAL,
        "MMS (multimedia messaging service), including text, pictures, and video, can be "
        "encrypted.",
        included=("text", "picture", "video"),
        owner_kinds=_USER_OR_QUEUE,
    ),
    AssetType(
        "0004",
        "User calendar access",
        Group.INTERNAL,
        "The token or password the Zoom client uses to access Google or Microsoft calendaring can "
        "be encrypted.",
        included=("token",),
    ),
    AssetType(
        "0005",
        "Zoom Room calendar access",
        Group.INTERNAL,
        "The token or password Zoom Room uses to access Google or Microsoft calendaring is "
        "encrypted.",
        included=("token",),
        owner_kinds=frozenset({OwnerKind.ROOM}),
    ),
    AssetType(
        "0007",
        "Other access",
        Group.INTERNAL,
        "Other access tokens, such as for Microsoft Teams, can be encrypted.",
        included=("token",),
        owner_kinds=_USER_OR_ACCOUNT,
    ),
    AssetType(
        "0008",
        "Team Chat",
        Group.INTERNAL,
        "All messages, files, emojis, and attachments can be encrypted if any member of the "
        "channel or chat is a CMK-licensed user, unless Advanced Chat Encryption is enabled. "
        "Code snippets are encrypted if the creator is a CMK-licensed user. Chats between two "
        "users of different organizations will be encrypted with both organizations' keys if "
        "both users have licensed CMK. If only one person is a CMK-licensed user, a Zoom-provided "
        "key will be used for the non-licensed user. An encrypted channel is encrypted using the "
        "owner's key, even if external participation is allowed.",
        included=("message", "file", "emoji", "attachment", "code_snippet"),
        excluded=("reaction", "giphy"),
        excluded_note="Reaction emojis and giphys (and the associated URLs) will not be "
        "encrypted, as they are static resources.",
        containers=_CHAT,
    ),
    AssetType(
        "0012",
        "Revenue Accelerator",
        Group.INTERNAL,
        "Analytical data such as thumbnails, OCR data, transcripts, meeting highlights, and "
        "certain AI-generated data.",
        included=("thumbnail", "ocr_data", "transcript", "highlight", "ai_generated"),
        owner_kinds=_USER_OR_ACCOUNT,
        ai_generated=frozenset({"ai_generated"}),
    ),
    AssetType(
        "0013",
        "Events",
        Group.INTERNAL,
        "Meetings/Webinar, Uploads to Content Library",
        included=("meeting", "webinar", "upload"),
        owner_kinds=_USER_OR_ACCOUNT,
    ),
    AssetType(
        "0017",
        "Notes",
        Group.INTERNAL,
        "Content generated using Zoom Notes.",
        included=("note",),
        excluded=("my_note",),
        excluded_note="This does not include content from My Notes.",
    ),
    AssetType(
        "0018",
        "Docs",
        Group.INTERNAL,
        "Content generated using Zoom Docs.",
        included=("doc",),
    ),
    AssetType(
        "9999",
        "Personal identifiers",
        Group.INTERNAL,
        "Pictures used for Smart Name Tags in Zoom Rooms, as well as other personal identifiers. "
        "This category does not need to be enabled; the data is CMK-encrypted for the whole "
        "account regardless of whether a user has licensed CMK or not.",
        included=("picture", "identifier"),
        owner_kinds=_ANYONE,
        needs_enabling=False,
        needs_licence=False,
    ),
    AssetType(
        "0014",
        "Recording and transcripts",
        Group.CONTACT_CENTER,
        "Call recordings and recording transcripts for calls made through Zoom Contact Center.",
        included=("recording", "transcript"),
        owner_kinds=_CONTACT_CENTER,
    ),
    AssetType(
        "0015",
        "Voicemails and voicemail transcripts",
        Group.CONTACT_CENTER,
        "Voicemail and voicemail transcripts for calls made through Zoom Contact Center.",
        included=("voicemail", "transcript"),
        owner_kinds=_CONTACT_CENTER,
    ),
    AssetType(
        "0016",
        "Messaging transcripts",
        Group.CONTACT_CENTER,
        "Transcripts for SMS messages sent through Zoom Contact Center.",
        included=("transcript",),
        excluded=("attachment",),
        excluded_note="Does not include attachments from social channels and SMS.",
        owner_kinds=_CONTACT_CENTER,
    ),
    AssetType(
        "0025",
        "Email transcripts and files",
        Group.CONTACT_CENTER,
        "Transcripts and attachments for emails sent through Zoom Contact Center.",
        included=("transcript", "file"),
        owner_kinds=_CONTACT_CENTER,
    ),
    AssetType(
        "0019",
        "Conversations in the AI Companion panel",
        Group.AI_COMPANION,
        "Prompt and responses in the AI Companion side panel.",
        included=("prompt", "response"),
        ai_generated=frozenset({"response"}),
        third_party_model_note=True,
        large_org_log_index_note=True,
    ),
    AssetType(
        "0020",
        "File history",
        Group.AI_COMPANION,
        "Files uploaded to AI Companion.",
        included=("file",),
        third_party_model_note=True,
        large_org_log_index_note=True,
    ),
    AssetType(
        "0021",
        "Email history",
        Group.AI_COMPANION,
        "Emails generated in Zoom Mail utilizing the AI Companion Email compose feature.",
        included=("email",),
        ai_generated=frozenset({"email"}),
        third_party_model_note=True,
        large_org_log_index_note=True,
    ),
    AssetType(
        "0022",
        "Custom AI files",
        Group.CUSTOM_AI_COMPANION,
        "Files uploaded to Custom AI Companion.",
        included=("file",),
        owner_kinds=_USER_OR_ACCOUNT,
        third_party_model_note=True,
        large_org_log_index_note=True,
    ),
    AssetType(
        "0023",
        "Connector credentials",
        Group.CUSTOM_AI_COMPANION,
        "Credentials are utilized for third-party connectors with Custom AI Companion.",
        included=("credential",),
        owner_kinds=_USER_OR_ACCOUNT,
        third_party_model_note=True,
        large_org_log_index_note=True,
    ),
    AssetType(
        "1001",
        "Hybrid chat data",
        Group.CMK_HYBRID,
        "Client-side encrypted chat messages managed via Team Chat hybrid.",
        included=("message",),
        containers=_CHAT,
        requires_setting="hybrid",
        client_side=True,
    ),
)
