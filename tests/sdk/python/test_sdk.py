"""Compatibility suite: the official `openai` Python SDK against our Assistants API v2 server.

Runs unchanged with openai==1.26.0 (+ httpx<0.28) and openai==3.57.0.  Capabilities that only
newer SDKs have (uploads, vector-store search / file content / attribute update) are detected
with hasattr and skipped, with a reason, only when the installed SDK really lacks them.

Environment:
  ASSISTANTS_BASE_URL   e.g. http://127.0.0.1:8000/v1 (required; see tests/sdk/run.sh)
  SDK_TEST_TIMEOUT      per-test wall-clock limit in seconds (default 180)
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from types import SimpleNamespace

import pytest

import openai
from openai import AssistantEventHandler, OpenAI

BASE_URL = os.environ.get("ASSISTANTS_BASE_URL", "http://127.0.0.1:8000/v1").rstrip("/")
SDK_VERSION = openai.__version__
# openai 3.x marks the whole Assistants API deprecated; that is the point of this server.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEST_TIMEOUT = int(os.environ.get("SDK_TEST_TIMEOUT", "180"))
MODEL = "gpt-4o"

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Look up the weather for a city.",
        "parameters": WEATHER_PARAMS,
    },
}


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _per_test_timeout():
    """Fail (instead of hanging CI) when a poller never sees a terminal status.

    The SDK pollers of 1.26.0 have no deadline of their own; SIGALRM interrupts their sleep.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s (SDK_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def client() -> OpenAI:
    # max_retries=0: a 5xx or a dropped connection must fail the test, not be papered over.
    return OpenAI(base_url=BASE_URL, api_key="test", max_retries=0, timeout=60.0)


def vector_stores(client: OpenAI):
    """`client.vector_stores` (3.x) or `client.beta.vector_stores` (1.26.0)."""
    if hasattr(client, "vector_stores"):
        return client.vector_stores
    return client.beta.vector_stores


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def assert_int_ts(value) -> None:
    assert isinstance(value, int) and not isinstance(value, bool), f"timestamp not an int: {value!r}"
    # Unix seconds, not milliseconds: sometime between 2020 and 2100.
    assert 1_577_836_800 <= value <= 4_102_444_800, f"timestamp not in Unix seconds: {value!r}"


def error_body(exc: openai.APIStatusError) -> dict:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    assert isinstance(body, dict), f"error body is not an object: {exc.body!r}"
    return body


def assert_error_shape(exc: openai.APIStatusError, status: int) -> dict:
    assert exc.status_code == status
    body = error_body(exc)
    for key in ("message", "type", "param", "code"):
        assert key in body, f"error object lacks {key!r}: {body!r}"
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert body["type"] == "invalid_request_error", body
    # The parsed response must be {"error": {...}} on the wire.
    raw = exc.response.json()
    assert set(raw.keys()) == {"error"}, raw
    return body


def raw_request(method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    """Plain HTTP (no SDK) for wire-level assertions the SDK objects hide."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE_URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer test")
    req.add_header("OpenAI-Beta", "assistants=v2")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def text_of(message) -> str:
    parts = [c.text.value for c in message.content if c.type == "text"]
    return "".join(parts)


def upload_text(client: OpenAI, name: str, text: str):
    return client.files.create(file=(name, text.encode("utf-8")), purpose="assistants")


def wait_vs_idle(client: OpenAI, vs_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        vs = vector_stores(client).retrieve(vs_id)
        if vs.file_counts.in_progress == 0:
            return vs
        assert time.monotonic() < deadline, f"vector store {vs_id} still has files in progress"
        time.sleep(0.1)


DOC_A = (
    "Field notes about the zanzibarquokka. The zanzibarquokka is a small marsupial that lives near the old "
    "harbor lighthouse and eats mango peel. Observers counted forty zanzibarquokka nests this spring.\n"
)
DOC_B = (
    "Recipe card: velociraptor marmalade. Boil bitter oranges with brown sugar for the velociraptor marmalade "
    "and store the jars in the cellar beside the harbor lighthouse.\n"
)
DOC_C = (
    "Maintenance log for the quantum xylophone. The quantum xylophone was retuned after a storm damaged the "
    "harbor lighthouse; the xylophone keys were polished with beeswax.\n"
)


def test_sdk_version_is_pinned():
    assert SDK_VERSION in ("1.26.0", "3.57.0"), f"unexpected openai version {SDK_VERSION}"


# --------------------------------------------------------------------------------------------
# assistants
# --------------------------------------------------------------------------------------------


def test_assistant_crud(client: OpenAI):
    tag = unique()
    created = client.beta.assistants.create(
        model=MODEL,
        name="sdk-crud",
        description="created by the SDK suite",
        instructions="Answer tersely.",
        tools=[WEATHER_TOOL, {"type": "file_search"}],
        metadata={"suite": "python", "tag": tag},
        temperature=0.5,
        top_p=0.9,
    )
    assert created.id.startswith("asst_")
    assert created.object == "assistant"
    assert_int_ts(created.created_at)
    assert created.model == MODEL
    assert created.name == "sdk-crud"
    assert created.description == "created by the SDK suite"
    assert created.instructions == "Answer tersely."
    assert created.metadata == {"suite": "python", "tag": tag}
    assert [t.type for t in created.tools] == ["function", "file_search"]
    fn = created.tools[0].function
    assert fn.name == "get_weather"
    assert fn.description == "Look up the weather for a city."
    assert fn.parameters == WEATHER_PARAMS
    assert created.temperature == pytest.approx(0.5)
    assert created.top_p == pytest.approx(0.9)

    got = client.beta.assistants.retrieve(created.id)
    assert got.id == created.id
    assert got.created_at == created.created_at
    assert got.name == "sdk-crud"
    assert [t.type for t in got.tools] == ["function", "file_search"]
    assert got.tools[0].function.parameters == WEATHER_PARAMS
    assert got.metadata == {"suite": "python", "tag": tag}

    updated = client.beta.assistants.update(
        created.id, name="sdk-crud-renamed", metadata={"only": "this"}
    )
    assert updated.id == created.id
    assert updated.name == "sdk-crud-renamed"
    assert updated.metadata == {"only": "this"}, "metadata update must replace the whole map"
    assert updated.instructions == "Answer tersely.", "fields not sent in an update must be kept"
    assert [t.type for t in updated.tools] == ["function", "file_search"]
    assert updated.created_at == created.created_at
    assert client.beta.assistants.retrieve(created.id).name == "sdk-crud-renamed"

    ids = [a.id for a in client.beta.assistants.list(limit=100)]
    assert created.id in ids

    deleted = client.beta.assistants.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert deleted.object == "assistant.deleted"

    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)
    assert created.id not in [a.id for a in client.beta.assistants.list(limit=100)]


def test_assistant_with_file_search_tool_resources(client: OpenAI):
    vs = vector_stores(client).create(name=unique("vs-for-asst-"))
    asst = client.beta.assistants.create(
        model=MODEL,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    assert asst.tool_resources is not None
    assert asst.tool_resources.file_search is not None
    assert asst.tool_resources.file_search.vector_store_ids == [vs.id]
    got = client.beta.assistants.retrieve(asst.id)
    assert got.tool_resources.file_search.vector_store_ids == [vs.id]
    client.beta.assistants.delete(asst.id)
    vector_stores(client).delete(vs.id)


def test_assistant_pagination(client: OpenAI):
    tag = unique("page-")
    created = [
        client.beta.assistants.create(model=MODEL, name=f"{tag}-{i:02d}", metadata={"tag": tag}).id
        for i in range(25)
    ]
    assert len(set(created)) == 25

    # Default order (desc): auto-pagination over pages of 5 must terminate and see each exactly once.
    seen_all: list[str] = []
    for a in client.beta.assistants.list(limit=5):
        seen_all.append(a.id)
        assert len(seen_all) < 100_000, "pagination does not terminate"
    assert len(seen_all) == len(set(seen_all)), "an assistant was yielded twice"
    ours_desc = [i for i in seen_all if i in set(created)]
    assert ours_desc == list(reversed(created)), "desc order must be newest first"

    # asc: creation order.
    ours_asc = [a.id for a in client.beta.assistants.list(limit=5, order="asc") if a.id in set(created)]
    assert ours_asc == created

    # Explicit cursors.
    page = client.beta.assistants.list(limit=5, order="asc", after=created[9])
    assert [a.id for a in page.data] == created[10:15]
    page = client.beta.assistants.list(limit=5, order="desc", after=created[10])
    assert [a.id for a in page.data] == list(reversed(created[5:10]))
    page = client.beta.assistants.list(limit=3, order="asc", before=created[10])
    ids = [a.id for a in page.data]
    assert ids and created[10] not in ids
    assert all(i in created[:10] for i in ids if i in set(created))

    # A cursor at the very end yields an empty page (old SDKs stop only on an empty page).
    page = client.beta.assistants.list(limit=5, order="asc", after=created[-1])
    assert page.data == []

    for i in created:
        client.beta.assistants.delete(i)


def test_list_envelope_on_the_wire(client: OpenAI):
    tag = unique()
    ids = [client.beta.assistants.create(model=MODEL, metadata={"tag": tag}).id for _ in range(3)]
    status, _, body = raw_request("GET", f"/assistants?limit=2&order=asc&after={ids[0]}")
    assert status == 200
    assert body["object"] == "list"
    assert [a["id"] for a in body["data"]] == ids[1:3]
    assert body["first_id"] == ids[1]
    assert body["last_id"] == ids[2]
    assert isinstance(body["has_more"], bool)

    status, _, body = raw_request("GET", f"/assistants?limit=2&order=asc&after={ids[2]}")
    assert status == 200
    assert body["data"] == []
    assert body["has_more"] is False
    assert body["first_id"] is None and body["last_id"] is None
    for i in ids:
        client.beta.assistants.delete(i)


# --------------------------------------------------------------------------------------------
# threads and messages
# --------------------------------------------------------------------------------------------


def test_thread_crud_with_initial_messages(client: OpenAI):
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Hello there", "metadata": {"n": "1"}},
            {"role": "assistant", "content": "General Kenobi"},
        ],
        metadata={"suite": "python"},
    )
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert_int_ts(thread.created_at)
    assert thread.metadata == {"suite": "python"}

    msgs = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert [text_of(m) for m in msgs] == ["Hello there", "General Kenobi"]
    for m in msgs:
        assert m.id.startswith("msg_")
        assert m.object == "thread.message"
        assert m.thread_id == thread.id
        assert_int_ts(m.created_at)
        assert m.content[0].type == "text"
        assert m.content[0].text.annotations == []
    assert msgs[0].metadata == {"n": "1"}

    got = client.beta.threads.retrieve(thread.id)
    assert got.id == thread.id and got.created_at == thread.created_at

    updated = client.beta.threads.update(thread.id, metadata={"changed": "yes"})
    assert updated.metadata == {"changed": "yes"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"changed": "yes"}

    deleted = client.beta.threads.delete(thread.id)
    assert deleted.id == thread.id
    assert deleted.deleted is True
    assert deleted.object == "thread.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


def test_empty_thread(client: OpenAI):
    thread = client.beta.threads.create()
    assert thread.id.startswith("thread_")
    page = client.beta.threads.messages.list(thread.id)
    assert page.data == []
    client.beta.threads.delete(thread.id)


def test_message_crud(client: OpenAI):
    thread = client.beta.threads.create()
    msg = client.beta.threads.messages.create(
        thread.id, role="user", content="What is the weather in Paris?", metadata={"k": "v"}
    )
    assert msg.id.startswith("msg_")
    assert msg.object == "thread.message"
    assert msg.thread_id == thread.id
    assert msg.role == "user"
    assert_int_ts(msg.created_at)
    assert msg.content[0].type == "text"
    assert msg.content[0].text.value == "What is the weather in Paris?"
    assert msg.metadata == {"k": "v"}
    assert msg.assistant_id is None
    assert msg.run_id is None

    # Content given as an array of text parts (the SDK passes it through as JSON).
    multi = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}],  # type: ignore[arg-type]
    )
    assert [c.text.value for c in multi.content] == ["part one", "part two"]

    got = client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id)
    assert got.id == msg.id
    assert got.content[0].text.value == "What is the weather in Paris?"
    assert got.created_at == msg.created_at

    updated = client.beta.threads.messages.update(msg.id, thread_id=thread.id, metadata={"reviewed": "true"})
    assert updated.id == msg.id
    assert updated.metadata == {"reviewed": "true"}
    assert updated.content[0].text.value == "What is the weather in Paris?"

    listed = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.id for m in listed] == [msg.id, multi.id]
    assert listed[0].metadata == {"reviewed": "true"}

    deleted = client.beta.threads.messages.delete(msg.id, thread_id=thread.id)
    assert deleted.id == msg.id
    assert deleted.deleted is True
    assert deleted.object == "thread.message.deleted"
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [multi.id]
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id)

    client.beta.threads.delete(thread.id)


def test_message_pagination(client: OpenAI):
    thread = client.beta.threads.create()
    created = [
        client.beta.threads.messages.create(thread.id, role="user", content=f"message number {i}").id
        for i in range(25)
    ]

    desc = [m.id for m in client.beta.threads.messages.list(thread.id, limit=5)]
    assert desc == list(reversed(created)), "desc (default) must be newest first, each exactly once"

    asc = [m.id for m in client.beta.threads.messages.list(thread.id, limit=5, order="asc")]
    assert asc == created

    page = client.beta.threads.messages.list(thread.id, limit=4, order="asc", after=created[19])
    assert [m.id for m in page.data] == created[20:24]

    # Iterating manually page by page through the SDK's page objects.
    page = client.beta.threads.messages.list(thread.id, limit=10, order="asc")
    pages = [[m.id for m in page.data]]
    while page.has_next_page():
        page = page.get_next_page()
        if page.data:
            pages.append([m.id for m in page.data])
        assert len(pages) < 10
    assert pages == [created[0:10], created[10:20], created[20:25]]

    page = client.beta.threads.messages.list(thread.id, order="asc", after=created[-1])
    assert page.data == []
    client.beta.threads.delete(thread.id)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

TEXT_BYTES = "Ünïcödé line one\r\nline two\twith tab\n\u2603 snowman, trailing spaces   \n".encode("utf-8")
BINARY_BYTES = bytes(range(256)) * 8 + b"\x00\xff\x00"


@pytest.mark.parametrize(
    "filename,payload",
    [("notes.txt", TEXT_BYTES), ("garbage.pdf", BINARY_BYTES)],
    ids=["text", "binary"],
)
def test_file_upload_retrieve_list_content_delete(client: OpenAI, filename: str, payload: bytes):
    f = client.files.create(file=(filename, payload), purpose="assistants")
    assert f.id.startswith("file-")
    assert f.object == "file"
    assert f.filename == filename
    assert f.bytes == len(payload)
    assert f.purpose == "assistants"
    assert_int_ts(f.created_at)

    got = client.files.retrieve(f.id)
    assert got.id == f.id and got.filename == filename and got.bytes == len(payload)

    listed = [x.id for x in client.files.list(purpose="assistants")]
    assert f.id in listed
    assert f.id in [x.id for x in client.files.list()]

    content = client.files.content(f.id)
    assert content.read() == payload
    assert client.files.content(f.id).content == payload

    deleted = client.files.delete(f.id)
    assert deleted.id == f.id
    assert deleted.deleted is True
    assert deleted.object == "file"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    assert f.id not in [x.id for x in client.files.list()]


def test_file_list_pagination(client: OpenAI):
    if "after" not in inspect.signature(client.files.list).parameters:
        pytest.skip(f"openai {SDK_VERSION} files.list has no cursor parameters (single page only)")
    ids = [upload_text(client, f"pg{i}.txt", f"file {i}").id for i in range(7)]
    seen = [f.id for f in client.files.list(limit=2, order="asc", purpose="assistants")]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in set(ids)] == ids
    page = client.files.list(limit=2, order="asc", after=ids[2])
    assert [f.id for f in page.data] == ids[3:5]
    for i in ids:
        client.files.delete(i)


# --------------------------------------------------------------------------------------------
# uploads (openai >= 1.3x)
# --------------------------------------------------------------------------------------------


def test_upload_parts_complete(client: OpenAI):
    if not hasattr(client, "uploads"):
        pytest.skip(f"openai {SDK_VERSION} has no uploads resource")
    part1 = b"first part of the upload, "
    part2 = "second part \u00e9\u00e8 and done.\n".encode("utf-8")
    up = client.uploads.create(
        bytes=len(part1) + len(part2), filename="joined.txt", mime_type="text/plain", purpose="assistants"
    )
    assert up.object == "upload"
    assert up.status == "pending"
    assert up.filename == "joined.txt"
    assert up.bytes == len(part1) + len(part2)
    assert up.purpose == "assistants"
    assert_int_ts(up.created_at)
    assert_int_ts(up.expires_at)

    p1 = client.uploads.parts.create(up.id, data=part1)
    p2 = client.uploads.parts.create(up.id, data=part2)
    for p in (p1, p2):
        assert p.object == "upload.part"
        assert p.upload_id == up.id
        assert_int_ts(p.created_at)
    assert p1.id != p2.id

    done = client.uploads.complete(up.id, part_ids=[p1.id, p2.id])
    assert done.id == up.id
    assert done.status == "completed"
    assert done.file is not None
    assert done.file.id.startswith("file-")
    assert done.file.filename == "joined.txt"
    assert done.file.bytes == len(part1) + len(part2)
    assert client.files.content(done.file.id).read() == part1 + part2
    assert client.files.retrieve(done.file.id).purpose == "assistants"


def test_upload_part_order_follows_part_ids(client: OpenAI):
    if not hasattr(client, "uploads"):
        pytest.skip(f"openai {SDK_VERSION} has no uploads resource")
    a, b = b"AAAA-", b"BBBB"
    up = client.uploads.create(bytes=len(a) + len(b), filename="order.txt", mime_type="text/plain", purpose="assistants")
    pb = client.uploads.parts.create(up.id, data=b)  # added first
    pa = client.uploads.parts.create(up.id, data=a)
    done = client.uploads.complete(up.id, part_ids=[pa.id, pb.id])
    assert client.files.content(done.file.id).read() == a + b


def test_upload_cancel(client: OpenAI):
    if not hasattr(client, "uploads"):
        pytest.skip(f"openai {SDK_VERSION} has no uploads resource")
    up = client.uploads.create(bytes=10, filename="never.txt", mime_type="text/plain", purpose="assistants")
    cancelled = client.uploads.cancel(up.id)
    assert cancelled.id == up.id
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(up.id, data=b"0123456789")


# --------------------------------------------------------------------------------------------
# vector stores
# --------------------------------------------------------------------------------------------


def test_vector_store_crud(client: OpenAI):
    vss = vector_stores(client)
    name = unique("vs-")
    vs = vss.create(name=name, metadata={"suite": "python"})
    assert vs.id.startswith("vs_")
    assert vs.object == "vector_store"
    assert_int_ts(vs.created_at)
    assert vs.name == name
    assert vs.metadata == {"suite": "python"}
    assert vs.status == "completed"
    assert vs.usage_bytes == 0
    fc = vs.file_counts
    assert (fc.in_progress, fc.completed, fc.failed, fc.cancelled, fc.total) == (0, 0, 0, 0, 0)

    got = vss.retrieve(vs.id)
    assert got.id == vs.id and got.name == name and got.created_at == vs.created_at

    updated = vss.update(vs.id, name=name + "-renamed", metadata={"v": "2"})
    assert updated.name == name + "-renamed"
    assert updated.metadata == {"v": "2"}
    assert vss.retrieve(vs.id).name == name + "-renamed"

    assert vs.id in [v.id for v in vss.list(limit=100)]

    deleted = vss.delete(vs.id)
    assert deleted.id == vs.id
    assert deleted.deleted is True
    assert deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        vss.retrieve(vs.id)


def test_vector_store_pagination(client: OpenAI):
    vss = vector_stores(client)
    created = [vss.create(name=unique("vspage-")).id for _ in range(12)]
    seen = [v.id for v in vss.list(limit=5, order="asc")]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in set(created)] == created
    for i in created:
        vss.delete(i)


def test_vector_store_file_upload_and_poll(client: OpenAI):
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-upload-"))
    vf = vss.files.upload_and_poll(vector_store_id=vs.id, file=("zanzibar.txt", DOC_A.encode()))
    assert vf.status == "completed", vf.last_error
    assert vf.id.startswith("file-"), "a vector-store file's id is the file id"
    assert vf.object == "vector_store.file"
    assert vf.vector_store_id == vs.id
    assert vf.last_error is None
    assert_int_ts(vf.created_at)
    assert client.files.retrieve(vf.id).filename == "zanzibar.txt"

    got = vss.files.retrieve(vf.id, vector_store_id=vs.id)
    assert got.id == vf.id and got.status == "completed"

    assert [f.id for f in vss.files.list(vs.id)] == [vf.id]
    assert [f.id for f in vss.files.list(vs.id, filter="completed")] == [vf.id]
    assert [f.id for f in vss.files.list(vs.id, filter="failed")] == []
    assert [f.id for f in vss.files.list(vs.id, filter="in_progress")] == []

    store = vss.retrieve(vs.id)
    assert store.file_counts.completed == 1
    assert store.file_counts.total == 1
    assert store.file_counts.in_progress == 0
    assert store.usage_bytes > 0

    deleted = vss.files.delete(vf.id, vector_store_id=vs.id)
    assert deleted.id == vf.id
    assert deleted.deleted is True
    assert deleted.object == "vector_store.file.deleted"
    assert [f.id for f in vss.files.list(vs.id)] == []
    store = vss.retrieve(vs.id)
    assert store.file_counts.total == 0 and store.file_counts.completed == 0
    # Detaching from the store does not delete the file itself.
    assert client.files.retrieve(vf.id).id == vf.id
    with pytest.raises(openai.NotFoundError):
        vss.files.retrieve(vf.id, vector_store_id=vs.id)


def test_vector_store_file_create_and_poll_existing_file(client: OpenAI):
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-attach-"))
    f = upload_text(client, "marmalade.md", "# Marmalade\n\n" + DOC_B)
    vf = vss.files.create_and_poll(f.id, vector_store_id=vs.id)
    assert vf.id == f.id
    assert vf.status == "completed", vf.last_error

    # Plain create (no polling) returns immediately with an allowed status.
    g = upload_text(client, "data.json", json.dumps({"fact": "the quantum xylophone has 37 keys"}))
    created = vss.files.create(vs.id, file_id=g.id)
    assert created.id == g.id
    assert created.status in ("in_progress", "completed")
    done = vss.files.poll(g.id, vector_store_id=vs.id)
    assert done.status == "completed", done.last_error
    assert wait_vs_idle(client, vs.id).file_counts.completed == 2


def test_vector_store_file_unsupported_type_fails(client: OpenAI):
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-fail-"))
    vf = vss.files.upload_and_poll(vector_store_id=vs.id, file=("broken.pdf", BINARY_BYTES))
    assert vf.status == "failed"
    assert vf.last_error is not None
    assert vf.last_error.code
    assert vf.last_error.message
    assert [f.id for f in vss.files.list(vs.id, filter="failed")] == [vf.id]
    assert [f.id for f in vss.files.list(vs.id, filter="completed")] == []
    store = vss.retrieve(vs.id)
    assert store.file_counts.failed == 1
    assert store.file_counts.completed == 0
    assert store.file_counts.total == 1


def test_file_batch_upload_and_poll(client: OpenAI):
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-batch-"))
    docs = {"a.txt": DOC_A, "b.txt": DOC_B, "c.txt": DOC_C}
    batch = vss.file_batches.upload_and_poll(
        vs.id, files=[(name, text.encode()) for name, text in docs.items()]
    )
    assert batch.id.startswith("vsfb_")
    assert batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == vs.id
    assert_int_ts(batch.created_at)
    assert batch.status == "completed"
    fc = batch.file_counts
    assert (fc.completed, fc.failed, fc.in_progress, fc.cancelled, fc.total) == (3, 0, 0, 0, 3)

    got = vss.file_batches.retrieve(batch.id, vector_store_id=vs.id)
    assert got.id == batch.id and got.status == "completed"

    in_batch = list(vss.file_batches.list_files(batch.id, vector_store_id=vs.id))
    assert len(in_batch) == 3
    assert all(f.status == "completed" for f in in_batch)
    assert all(f.vector_store_id == vs.id for f in in_batch)
    names = sorted(client.files.retrieve(f.id).filename for f in in_batch)
    assert names == ["a.txt", "b.txt", "c.txt"]
    assert len(list(vss.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="completed"))) == 3
    assert list(vss.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="failed")) == []
    paged = [f.id for f in vss.file_batches.list_files(batch.id, vector_store_id=vs.id, limit=1)]
    assert sorted(paged) == sorted(f.id for f in in_batch)

    store = vss.retrieve(vs.id)
    assert store.file_counts.completed == 3
    assert store.file_counts.total == 3
    assert store.file_counts.in_progress == 0
    assert sorted(f.id for f in vss.files.list(vs.id)) == sorted(f.id for f in in_batch)


def test_file_batch_create_and_poll_with_file_ids(client: OpenAI):
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-batch-ids-"))
    ids = [upload_text(client, f"doc{i}.txt", f"document {i}: " + DOC_C).id for i in range(2)]
    batch = vss.file_batches.create_and_poll(vs.id, file_ids=ids)
    assert batch.status == "completed"
    assert batch.file_counts.completed == 2
    assert sorted(f.id for f in vss.file_batches.list_files(batch.id, vector_store_id=vs.id)) == sorted(ids)


def test_vector_store_created_with_file_ids(client: OpenAI):
    vss = vector_stores(client)
    ids = [upload_text(client, "a.txt", DOC_A).id, upload_text(client, "b.txt", DOC_B).id]
    vs = vss.create(name=unique("vs-with-files-"), file_ids=ids)
    assert vs.id.startswith("vs_")
    store = wait_vs_idle(client, vs.id)
    assert store.file_counts.completed == 2
    assert store.file_counts.total == 2
    assert sorted(f.id for f in vss.files.list(vs.id)) == sorted(ids)


def _search_fixture(client: OpenAI):
    """A store holding DOC_A/B/C as a.txt/b.txt/c.txt; returns (store, {filename: file_id})."""
    vss = vector_stores(client)
    vs = vss.create(name=unique("vs-search-"))
    by_name = {}
    for name, text in (("a.txt", DOC_A), ("b.txt", DOC_B), ("c.txt", DOC_C)):
        f = upload_text(client, name, text)
        by_name[name] = f.id
    batch = vss.file_batches.create_and_poll(vs.id, file_ids=list(by_name.values()))
    assert batch.file_counts.completed == 3, batch
    return vs, by_name


def test_vector_store_search(client: OpenAI):
    vss = vector_stores(client)
    if not hasattr(vss, "search"):
        pytest.skip(f"openai {SDK_VERSION} has no vector_stores.search")
    vs, ids = _search_fixture(client)

    page = vss.search(vs.id, query="zanzibarquokka")
    results = list(page.data)
    assert results, "search found nothing"
    top = results[0]
    assert top.file_id == ids["a.txt"]
    assert top.filename == "a.txt"
    assert 0.0 <= top.score <= 1.0
    assert top.content and top.content[0].type == "text"
    assert "zanzibarquokka" in " ".join(c.text for c in top.content)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True), "results must be ordered by score"

    top = vss.search(vs.id, query="velociraptor marmalade recipe").data[0]
    assert top.file_id == ids["b.txt"]
    top = vss.search(vs.id, query="quantum xylophone", max_num_results=1)
    assert len(top.data) == 1 and top.data[0].file_id == ids["c.txt"]


def test_vector_store_file_content(client: OpenAI):
    vss = vector_stores(client)
    if not hasattr(vss.files, "content"):
        pytest.skip(f"openai {SDK_VERSION} has no vector_stores.files.content")
    vs = vss.create(name=unique("vs-content-"))
    vf = vss.files.upload_and_poll(vector_store_id=vs.id, file=("xylophone.txt", DOC_C.encode()))
    assert vf.status == "completed"
    page = vss.files.content(vf.id, vector_store_id=vs.id)
    parts = list(page.data)
    assert parts and all(p.type == "text" for p in parts)
    text = "".join(p.text for p in parts)
    assert "quantum xylophone" in text
    assert "beeswax" in text


def test_vector_store_file_attributes_and_filtered_search(client: OpenAI):
    vss = vector_stores(client)
    if not hasattr(vss.files, "update"):
        pytest.skip(f"openai {SDK_VERSION} has no vector_stores.files.update (attributes)")
    vs, ids = _search_fixture(client)

    upd = vss.files.update(ids["b.txt"], vector_store_id=vs.id, attributes={"category": "special", "rank": 2})
    assert upd.id == ids["b.txt"]
    assert upd.attributes == {"category": "special", "rank": 2}
    vss.files.update(ids["a.txt"], vector_store_id=vs.id, attributes={"category": "other", "rank": 1})
    got = vss.files.retrieve(ids["b.txt"], vector_store_id=vs.id)
    assert got.attributes == {"category": "special", "rank": 2}

    if not hasattr(vss, "search"):
        pytest.skip(f"openai {SDK_VERSION} has no vector_stores.search")
    # Unfiltered, the zanzibarquokka file wins; filtered to category=special only b.txt may answer.
    assert vss.search(vs.id, query="zanzibarquokka harbor lighthouse").data[0].file_id == ids["a.txt"]
    filtered = vss.search(
        vs.id,
        query="zanzibarquokka harbor lighthouse",
        filters={"type": "eq", "key": "category", "value": "special"},
    ).data
    assert filtered, "filtered search returned nothing although b.txt matches 'harbor lighthouse'"
    assert {r.file_id for r in filtered} == {ids["b.txt"]}
    assert filtered[0].attributes == {"category": "special", "rank": 2}

    compound = vss.search(
        vs.id,
        query="harbor lighthouse",
        filters={
            "type": "or",
            "filters": [
                {"type": "eq", "key": "category", "value": "other"},
                {"type": "gte", "key": "rank", "value": 2},
            ],
        },
    ).data
    assert {r.file_id for r in compound} == {ids["a.txt"], ids["b.txt"]}


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_not_found_errors(client: OpenAI):
    with pytest.raises(openai.NotFoundError) as ei:
        client.beta.assistants.retrieve("asst_doesnotexist000")
    body = assert_error_shape(ei.value, 404)
    assert "asst_doesnotexist000" in body["message"]

    with pytest.raises(openai.NotFoundError) as ei:
        client.beta.threads.retrieve("thread_doesnotexist000")
    assert_error_shape(ei.value, 404)

    with pytest.raises(openai.NotFoundError) as ei:
        client.beta.threads.messages.list("thread_doesnotexist000")
    assert_error_shape(ei.value, 404)

    with pytest.raises(openai.NotFoundError) as ei:
        vector_stores(client).retrieve("vs_doesnotexist000")
    assert_error_shape(ei.value, 404)

    with pytest.raises(openai.NotFoundError) as ei:
        client.files.retrieve("file-doesnotexist000")
    assert_error_shape(ei.value, 404)

    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete("asst_doesnotexist000")


def test_bad_request_metadata_too_many_keys(client: OpenAI):
    metadata = {f"key{i}": "v" for i in range(17)}
    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.assistants.create(model=MODEL, metadata=metadata)
    body = assert_error_shape(ei.value, 400)
    assert (body["param"] or "").startswith("metadata"), body

    # 16 keys is the limit and is fine.
    ok = client.beta.assistants.create(model=MODEL, metadata={f"key{i}": "v" for i in range(16)})
    assert len(ok.metadata) == 16
    client.beta.assistants.delete(ok.id)


def test_bad_request_wrong_type(client: OpenAI):
    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.assistants.create(model=MODEL, extra_body={"model": 123})
    body = assert_error_shape(ei.value, 400)
    assert body["param"] == "model", body

    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.assistants.create(model=MODEL, extra_body={"tools": "not-a-list"})
    assert_error_shape(ei.value, 400)

    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(
            client.beta.threads.create().id, role="wizard", content="hi"  # type: ignore[arg-type]
        )


def test_unknown_json_keys_are_ignored(client: OpenAI):
    a = client.beta.assistants.create(model=MODEL, name="extra", extra_body={"some_future_field": {"x": 1}})
    assert a.name == "extra"
    client.beta.assistants.delete(a.id)


# --------------------------------------------------------------------------------------------
# runs
#
# The server's upstream is tests/sdk/fake_llm.py: with tools offered and a last user message
# mentioning "weather" it calls get_weather({"city": "Paris"}); offered the built-in
# `file_search` function it searches for the last user message, and answers a labelled search
# result with "Found it 【n:m†file】." (quoting the first label); after another tool result it
# answers "Tool said: <output>"; otherwise "echo: <last user message>". It streams word by word,
# each word followed by a space, hence the rstrip() in reply_text().
# --------------------------------------------------------------------------------------------

# One simple run on the wire, consecutive duplicates (the message deltas) collapsed.
SIMPLE_RUN_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]
TOOL_CALL_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.run.requires_action",
]
# submit_tool_outputs(stream=True) continues the same run: the pending tool step completes first.
AFTER_TOOL_OUTPUTS_EVENTS = [
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.completed",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


@pytest.fixture(scope="session")
def echo_assistant(client: OpenAI):
    return client.beta.assistants.create(model=MODEL, name="sdk-runs-echo", instructions="Repeat after me.")


@pytest.fixture(scope="session")
def weather_assistant(client: OpenAI):
    return client.beta.assistants.create(
        model=MODEL, name="sdk-runs-weather", instructions="Use the tools.", tools=[WEATHER_TOOL]
    )


class RecordingHandler(AssistantEventHandler):
    """Records what the SDK's own stream helper reports, callback by callback."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.thread_created = None
        self.deltas: list[str] = []
        self.texts_done: list[str] = []
        self.tool_calls_created: list[tuple[str, str, str]] = []  # (id, type, function name)
        self.tool_calls_done: list = []
        self.steps_done: list = []

    def on_event(self, event) -> None:
        self.events.append(event.event)
        if event.event == "thread.created":
            self.thread_created = event.data

    def on_text_delta(self, delta, snapshot) -> None:  # noqa: ARG002
        self.deltas.append(delta.value)

    def on_text_done(self, text) -> None:
        self.texts_done.append(text.value)

    def on_tool_call_created(self, tool_call) -> None:
        # The snapshot is rebuilt on every delta: copy what the first delta carried.
        # (Built-in tool calls such as file_search have no function.)
        function = getattr(tool_call, "function", None)
        self.tool_calls_created.append((tool_call.id, tool_call.type, function.name if function else None))

    def on_tool_call_done(self, tool_call) -> None:
        self.tool_calls_done.append(tool_call)

    def on_run_step_done(self, run_step) -> None:
        self.steps_done.append(run_step)


def collapse(events: list[str]) -> list[str]:
    out: list[str] = []
    for e in events:
        if not out or out[-1] != e:
            out.append(e)
    return out


def reply_text(message) -> str:
    return text_of(message).rstrip()


def assert_usage(usage) -> None:
    assert usage is not None, "a terminal run carries usage"
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, key)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, (key, usage)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    assert usage.total_tokens > 0, usage


def weather_thread(client: OpenAI):
    return client.beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Paris?"}])


def pending_weather_call(run):
    """The single get_weather call a run in requires_action waits for."""
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.required_action is not None
    assert run.required_action.type == "submit_tool_outputs"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.id.startswith("call_"), call.id
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    return call


def test_run_create_and_poll_completes(client: OpenAI, echo_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello from the poller"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=echo_assistant.id)
    assert run.status == "completed", run.last_error
    assert run.id.startswith("run_")
    assert run.object == "thread.run"
    assert run.thread_id == thread.id
    assert run.assistant_id == echo_assistant.id
    assert run.model == MODEL
    assert run.instructions == "Repeat after me."
    assert run.tools == []
    for ts in (run.created_at, run.started_at, run.completed_at):
        assert_int_ts(ts)
    assert run.expires_at is None, "expires_at is null once the run is terminal"
    assert run.cancelled_at is None and run.failed_at is None
    assert run.last_error is None
    assert run.required_action is None
    assert_usage(run.usage)

    msgs = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.role for m in msgs] == ["user", "assistant"]
    reply = msgs[1]
    assert reply_text(reply) == "echo: hello from the poller"
    assert reply.run_id == run.id
    assert reply.assistant_id == echo_assistant.id
    assert reply.status == "completed"

    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id))
    assert len(steps) == 1, steps
    step = steps[0]
    assert step.id.startswith("step_")
    assert step.object == "thread.run.step"
    assert step.type == "message_creation"
    assert step.status == "completed"
    assert step.run_id == run.id and step.thread_id == thread.id
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == reply.id
    assert_int_ts(step.completed_at)
    assert_usage(step.usage)


def test_run_stream_with_event_handler(client: OpenAI, echo_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stream me a reply please"}])
    handler = RecordingHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=echo_assistant.id, event_handler=handler
    ) as stream:
        assert stream is handler
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()

    assert collapse(handler.events) == SIMPLE_RUN_EVENTS
    assert len(handler.deltas) >= 2, f"expected the reply in several deltas, got {handler.deltas!r}"
    assert "".join(handler.deltas).rstrip() == "echo: stream me a reply please"
    assert [t.rstrip() for t in handler.texts_done] == ["echo: stream me a reply please"]
    assert len(messages) == 1
    assert reply_text(messages[0]) == "echo: stream me a reply please"
    assert messages[0].status == "completed"
    assert run.status == "completed"
    assert run.thread_id == thread.id
    assert_usage(run.usage)

    # What was streamed is what was stored.
    stored = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
    assert stored.id == messages[0].id
    assert stored.run_id == run.id
    assert reply_text(stored) == "echo: stream me a reply please"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"


def test_create_and_run_stream_starts_with_thread(client: OpenAI, echo_assistant):
    if not hasattr(client.beta.threads, "create_and_run_stream"):
        pytest.skip(f"openai {SDK_VERSION} has no threads.create_and_run_stream")
    handler = RecordingHandler()
    with client.beta.threads.create_and_run_stream(
        assistant_id=echo_assistant.id,
        thread={"messages": [{"role": "user", "content": "a brand new thread"}]},
        event_handler=handler,
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()

    assert collapse(handler.events) == ["thread.created"] + SIMPLE_RUN_EVENTS
    thread = handler.thread_created
    assert thread is not None and thread.id.startswith("thread_")
    assert run.thread_id == thread.id
    assert run.status == "completed"
    assert "".join(handler.deltas).rstrip() == "echo: a brand new thread"
    assert [reply_text(m) for m in messages] == ["echo: a brand new thread"]
    stored = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [(m.role, reply_text(m)) for m in stored] == [
        ("user", "a brand new thread"),
        ("assistant", "echo: a brand new thread"),
    ]


def test_create_and_run_poll(client: OpenAI, echo_assistant):
    if not hasattr(client.beta.threads, "create_and_run_poll"):
        pytest.skip(f"openai {SDK_VERSION} has no threads.create_and_run_poll")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=echo_assistant.id,
        thread={"messages": [{"role": "user", "content": "polled in one call"}]},
    )
    assert run.status == "completed", run.last_error
    assert run.thread_id.startswith("thread_")
    assert run.usage is not None and run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    stored = list(client.beta.threads.messages.list(run.thread_id, order="asc"))
    assert [(m.role, reply_text(m)) for m in stored] == [
        ("user", "polled in one call"),
        ("assistant", "echo: polled in one call"),
    ]


def test_function_tool_round_trip_polled(client: OpenAI, weather_assistant):
    thread = weather_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=weather_assistant.id)
    call = pending_weather_call(run)
    assert [t.type for t in run.tools] == ["function"]
    assert_int_ts(run.expires_at)
    assert run.expires_at == run.created_at + 600, "an active run expires 10 minutes after creation"
    assert run.completed_at is None

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        tool_outputs=[{"tool_call_id": call.id, "output": "22C"}], run_id=run.id, thread_id=thread.id
    )
    assert done.id == run.id
    assert done.status == "completed", done.last_error
    assert done.required_action is None
    assert_int_ts(done.completed_at)
    assert_usage(done.usage)

    msgs = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert reply_text(msgs[1]) == "Tool said: 22C"
    assert msgs[1].run_id == run.id

    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [s.status for s in steps] == ["completed", "completed"]
    tool_step, message_step = steps
    assert tool_step.step_details.type == "tool_calls"
    [tc] = tool_step.step_details.tool_calls
    assert tc.id == call.id
    assert tc.type == "function"
    assert tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Paris"}
    assert tc.function.output == "22C"
    assert message_step.step_details.message_creation.message_id == msgs[1].id


def test_function_tool_round_trip_streamed(client: OpenAI, weather_assistant):
    thread = weather_thread(client)
    first = RecordingHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=weather_assistant.id, event_handler=first
    ) as stream:
        stream.until_done()
        run = stream.current_run

    assert collapse(first.events) == TOOL_CALL_EVENTS
    call = pending_weather_call(run)
    assert first.tool_calls_created == [(call.id, "function", "get_weather")]
    assert len(first.tool_calls_done) == 1
    assert json.loads(first.tool_calls_done[0].function.arguments) == {"city": "Paris"}
    assert first.deltas == []

    second = RecordingHandler()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        tool_outputs=[{"tool_call_id": call.id, "output": "22C"}],
        run_id=run.id,
        thread_id=thread.id,
        event_handler=second,
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        final = stream.get_final_run()

    assert collapse(second.events) == AFTER_TOOL_OUTPUTS_EVENTS
    assert final.id == run.id
    assert final.status == "completed"
    assert_usage(final.usage)
    assert "".join(second.deltas).rstrip() == "Tool said: 22C"
    assert [reply_text(m) for m in messages] == ["Tool said: 22C"]
    tool_step = second.steps_done[0]
    assert tool_step.type == "tool_calls" and tool_step.status == "completed"
    assert [(tc.id, tc.function.output) for tc in tool_step.step_details.tool_calls] == [(call.id, "22C")]
    assert [s.type for s in second.steps_done] == ["tool_calls", "message_creation"]


def test_thread_locked_while_run_requires_action(client: OpenAI, weather_assistant):
    thread = weather_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=weather_assistant.id)
    call = pending_weather_call(run)

    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.threads.messages.create(thread.id, role="user", content="one more thing")
    body = assert_error_shape(ei.value, 400)
    assert run.id in body["message"], body
    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.threads.runs.create(thread.id, assistant_id=weather_assistant.id)
    assert_error_shape(ei.value, 400)
    assert len(client.beta.threads.messages.list(thread.id).data) == 1, "the refused message was stored"

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        tool_outputs=[{"tool_call_id": call.id, "output": "22C"}], run_id=run.id, thread_id=thread.id
    )
    assert done.status == "completed", done.last_error
    # The lock ends with the run.
    client.beta.threads.messages.create(thread.id, role="user", content="one more thing")


def test_run_cancel_from_requires_action(client: OpenAI, weather_assistant, echo_assistant):
    thread = weather_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=weather_assistant.id)
    pending_weather_call(run)

    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.id == run.id
    assert cancelled.status in ("cancelling", "cancelled"), cancelled.status
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert final.status == "cancelled"
    assert_int_ts(final.cancelled_at)
    assert final.completed_at is None and final.failed_at is None
    assert final.expires_at is None, "expires_at is null once the run is terminal"

    [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "tool_calls"
    assert step.status == "cancelled"

    # A cancelled run cannot be cancelled again.
    with pytest.raises(openai.BadRequestError) as ei:
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert_error_shape(ei.value, 400)

    # The thread is free again: a message and a new run go through.
    client.beta.threads.messages.create(thread.id, role="user", content="never mind")
    again = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=echo_assistant.id)
    assert again.status == "completed", again.last_error
    latest = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert reply_text(latest) == "echo: never mind"

    # Spec: usage is null only while the run is not terminal; cancelled is terminal.
    assert_usage(final.usage)


def test_run_list_retrieve_update_and_step_retrieve(client: OpenAI, echo_assistant):
    runs = client.beta.threads.runs
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    r1 = runs.create_and_poll(thread_id=thread.id, assistant_id=echo_assistant.id, metadata={"n": "1"})
    assert r1.status == "completed", r1.last_error
    assert r1.metadata == {"n": "1"}
    client.beta.threads.messages.create(thread.id, role="user", content="second")
    r2 = runs.create_and_poll(thread_id=thread.id, assistant_id=echo_assistant.id, metadata={"n": "2"})
    assert r2.status == "completed", r2.last_error
    assert reply_text(client.beta.threads.messages.list(thread.id, limit=1).data[0]) == "echo: second"

    assert [r.id for r in runs.list(thread.id)] == [r2.id, r1.id], "desc (default) must be newest first"
    assert [r.id for r in runs.list(thread.id, order="asc", limit=1)] == [r1.id, r2.id]
    page = runs.list(thread.id, order="asc", after=r2.id)
    assert page.data == []

    got = runs.retrieve(r1.id, thread_id=thread.id)
    assert got.id == r1.id
    assert got.object == "thread.run"
    assert got.status == "completed"
    assert got.created_at == r1.created_at
    assert got.completed_at == r1.completed_at
    assert got.metadata == {"n": "1"}
    assert got.usage == r1.usage

    updated = runs.update(r1.id, thread_id=thread.id, metadata={"reviewed": "yes"})
    assert updated.id == r1.id
    assert updated.metadata == {"reviewed": "yes"}, "metadata update must replace the whole map"
    assert updated.status == "completed"
    assert runs.retrieve(r1.id, thread_id=thread.id).metadata == {"reviewed": "yes"}

    [listed] = runs.steps.list(r1.id, thread_id=thread.id).data
    step = runs.steps.retrieve(listed.id, thread_id=thread.id, run_id=r1.id)
    assert step.id == listed.id
    assert step.object == "thread.run.step"
    assert step.run_id == r1.id
    assert step.assistant_id == echo_assistant.id
    assert step.type == "message_creation"
    assert step.step_details.message_creation.message_id == listed.step_details.message_creation.message_id
    assert step.created_at == listed.created_at

    with pytest.raises(openai.NotFoundError) as ei:
        runs.retrieve("run_doesnotexist000", thread_id=thread.id)
    assert_error_shape(ei.value, 404)
    with pytest.raises(openai.NotFoundError) as ei:
        runs.steps.retrieve("step_doesnotexist000", thread_id=thread.id, run_id=r1.id)
    assert_error_shape(ei.value, 404)


# --------------------------------------------------------------------------------------------
# file_search runs
#
# The server runs the built-in file_search tool itself: the fake upstream calls `file_search`
# with the user's question, the server searches the assistant's vector store, records the hits in
# a file_search tool call step and hands the model passages labelled 【n:m†file】; the label the
# model quotes in its answer becomes a file_citation annotation.
# --------------------------------------------------------------------------------------------

FS_FILE_NAME = "glimmerfrost.txt"
FS_DOC = (
    "Field guide entry: the glimmerfrost tortoise. The glimmerfrost tortoise lives on the basalt cliffs of "
    "Skerry Nine and eats lichen dusted with sea salt. Its shell glows a faint blue in winter.\n"
)
FS_QUESTION = "What does the glimmerfrost tortoise eat?"
FS_INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"
FS_LABEL = re.compile(r"\u3010\d+:\d+\u2020([^\u3011]*)\u3011")  # 【0:0†glimmerfrost.txt】

# A file_search run on the wire, consecutive duplicates collapsed: the tool step is created,
# names its call in a delta and completes (with results) without requires_action, then the
# answer is written; its annotations delta is one more thread.message.delta.
FILE_SEARCH_RUN_EVENTS = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.run.step.completed",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


@pytest.fixture(scope="module")
def file_search_setup(client: OpenAI):
    """One uploaded file in an ingested vector store, and an assistant searching that store."""
    f = upload_text(client, FS_FILE_NAME, FS_DOC)
    vs = vector_stores(client).create(name=unique("vs-fs-runs-"), file_ids=[f.id])
    store = wait_vs_idle(client, vs.id)
    assert store.file_counts.completed == 1, store.file_counts
    assistant = client.beta.assistants.create(
        model=MODEL,
        name="sdk-runs-file-search",
        instructions="Search the files and cite what you use.",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    return SimpleNamespace(file=f, vector_store=vs, assistant=assistant)


def fs_thread(client: OpenAI):
    return client.beta.threads.create(messages=[{"role": "user", "content": FS_QUESTION}])


def as_plain(value):
    """A pydantic model (3.x) or the plain object 1.26.0 keeps `file_search` as, as plain data."""
    return value.model_dump() if hasattr(value, "model_dump") else value


def assert_cites_file(message, file_id: str) -> str:
    """The answer quotes one label of our file, annotated as a file_citation slicing exactly it."""
    texts = [c.text for c in message.content if c.type == "text"]
    assert len(texts) == 1, message.content
    text = texts[0]
    found = FS_LABEL.search(text.value)
    assert found, f"no 【n:m†file】 label in {text.value!r}"
    label = found.group(0)
    assert found.group(1) == FS_FILE_NAME, label
    assert text.value.rstrip() == f"Found it {label}."
    assert len(text.annotations) == 1, text.annotations
    [ann] = text.annotations
    assert ann.type == "file_citation", ann
    assert ann.text == label
    assert ann.file_citation.file_id == file_id
    assert isinstance(ann.start_index, int) and isinstance(ann.end_index, int), ann
    assert text.value[ann.start_index : ann.end_index] == label, (ann.start_index, ann.end_index, text.value)
    return label


def fs_steps_path(thread_id: str, run_id: str, step_id: str | None = None, include: bool = False) -> str:
    path = f"/threads/{thread_id}/runs/{run_id}/steps" + (f"/{step_id}" if step_id else "")
    query = [("order", "asc")] if step_id is None else []
    if include:
        query.append(("include[]", FS_INCLUDE))
    return path + ("?" + urllib.parse.urlencode(query) if query else "")


def file_search_call(step, file_id: str) -> dict:
    """The single file_search call of a completed tool_calls step, as plain data."""
    assert step.type == "tool_calls", step.type
    assert step.status == "completed", (step.status, step.last_error)
    assert step.step_details.type == "tool_calls"
    [call] = step.step_details.tool_calls
    assert call.type == "file_search", call
    assert call.id.startswith("call_"), call.id
    details = as_plain(call.file_search)
    assert isinstance(details, dict), details
    ranking = details.get("ranking_options")
    assert ranking, f"no ranking_options in {details!r}"
    assert ranking["ranker"] in ("auto", "default_2024_08_21"), ranking
    assert 0.0 <= ranking["score_threshold"] <= 1.0, ranking
    results = details.get("results")
    assert results, f"the search found nothing: {details!r}"
    top = results[0]
    assert top["file_id"] == file_id, results
    assert top["file_name"] == FS_FILE_NAME, results
    assert isinstance(top["score"], float) and 0.0 < top["score"] <= 1.0, results
    return details


def test_file_search_run_create_and_poll_cites_the_file(client: OpenAI, file_search_setup):
    fs = file_search_setup
    thread = fs_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=fs.assistant.id)
    assert run.status == "completed", run.last_error
    assert run.required_action is None, "file_search runs on the server, never as requires_action"
    assert [t.type for t in run.tools] == ["file_search"]
    assert_usage(run.usage)

    msgs = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.role for m in msgs] == ["user", "assistant"]
    reply = msgs[1]
    assert reply.run_id == run.id
    assert reply.status == "completed"
    assert_cites_file(reply, fs.file.id)
    # Retrieving the message gives the same annotation.
    assert_cites_file(client.beta.threads.messages.retrieve(reply.id, thread_id=thread.id), fs.file.id)


def test_file_search_run_steps_record_results(client: OpenAI, file_search_setup):
    fs = file_search_setup
    thread = fs_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=fs.assistant.id)
    assert run.status == "completed", run.last_error

    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_step, message_step = steps
    details = file_search_call(tool_step, fs.file.id)
    assert all(r.get("content") is None for r in details["results"]), "content only with include[]"
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert message_step.step_details.message_creation.message_id == reply.id

    got = client.beta.threads.runs.steps.retrieve(tool_step.id, thread_id=thread.id, run_id=run.id)
    assert file_search_call(got, fs.file.id)["results"] == details["results"]

    # On the wire: no content key without include[], the passage text with it (list and retrieve).
    status, _, body = raw_request("GET", fs_steps_path(thread.id, run.id))
    assert status == 200, body
    results = body["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert results and all("content" not in r for r in results), results
    for path in (
        fs_steps_path(thread.id, run.id, include=True),
        fs_steps_path(thread.id, run.id, tool_step.id, include=True),
    ):
        status, _, body = raw_request("GET", path)
        assert status == 200, (path, body)
        step = body["data"][0] if body.get("object") == "list" else body
        [top, *_] = step["step_details"]["tool_calls"][0]["file_search"]["results"]
        assert top["file_id"] == fs.file.id
        assert top["content"] and top["content"][0]["type"] == "text", top
        assert "lichen dusted with sea salt" in top["content"][0]["text"], top


def test_file_search_step_content_with_sdk_include(client: OpenAI, file_search_setup):
    steps_api = client.beta.threads.runs.steps
    if "include" not in inspect.signature(steps_api.list).parameters:
        pytest.skip(f"openai {SDK_VERSION} runs.steps.list has no include parameter (checked over raw HTTP instead)")
    fs = file_search_setup
    thread = fs_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=fs.assistant.id)
    assert run.status == "completed", run.last_error

    listed = steps_api.list(run.id, thread_id=thread.id, order="asc", include=[FS_INCLUDE]).data
    assert [s.type for s in listed] == ["tool_calls", "message_creation"]
    top = file_search_call(listed[0], fs.file.id)["results"][0]
    assert top["content"] and top["content"][0]["type"] == "text", top
    assert "lichen dusted with sea salt" in top["content"][0]["text"]

    got = steps_api.retrieve(listed[0].id, thread_id=thread.id, run_id=run.id, include=[FS_INCLUDE])
    assert file_search_call(got, fs.file.id)["results"][0]["content"] == top["content"]
    plain = steps_api.retrieve(listed[0].id, thread_id=thread.id, run_id=run.id)
    assert file_search_call(plain, fs.file.id)["results"][0].get("content") is None


class CitationHandler(RecordingHandler):
    """Also records what the SDK's message snapshot holds when an annotations delta arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.annotation_deltas: list[list[dict]] = []
        self.annotated_snapshots: list[list[dict]] = []

    def on_text_delta(self, delta, snapshot) -> None:
        if delta.value is not None:
            self.deltas.append(delta.value)
        if delta.annotations:
            self.annotation_deltas.append([a.model_dump() for a in delta.annotations])
            self.annotated_snapshots.append([a.model_dump() for a in snapshot.annotations or []])


def test_file_search_run_streamed_with_event_handler(client: OpenAI, file_search_setup):
    fs = file_search_setup
    thread = fs_thread(client)
    handler = CitationHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=fs.assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()

    assert run.status == "completed", run.last_error
    assert collapse(handler.events) == FILE_SEARCH_RUN_EVENTS
    # The tool call the handler saw is a file_search call (not a function).
    assert len(handler.tool_calls_created) == 1, handler.tool_calls_created
    call_id, call_type, function_name = handler.tool_calls_created[0]
    assert call_type == "file_search"
    assert call_id.startswith("call_")
    assert function_name is None
    assert [s.type for s in handler.steps_done] == ["tool_calls", "message_creation"]
    details = file_search_call(handler.steps_done[0], fs.file.id)
    assert handler.steps_done[0].step_details.tool_calls[0].id == call_id
    assert all(r.get("content") is None for r in details["results"])

    assert len(messages) == 1
    label = assert_cites_file(messages[0], fs.file.id)
    assert "".join(handler.deltas).rstrip() == f"Found it {label}."
    # The annotations came in one delta before thread.message.completed, and the SDK merged them
    # into its message snapshot.
    assert len(handler.annotation_deltas) == 1, handler.annotation_deltas
    [streamed] = handler.annotation_deltas[0]
    assert streamed["index"] == 0
    assert streamed["type"] == "file_citation"
    assert streamed["text"] == label
    assert streamed["file_citation"]["file_id"] == fs.file.id
    [accumulated] = handler.annotated_snapshots[0]
    assert accumulated["text"] == label
    assert accumulated["file_citation"]["file_id"] == fs.file.id
    ann = messages[0].content[0].text.annotations[0]
    assert (streamed["start_index"], streamed["end_index"]) == (ann.start_index, ann.end_index)
    assert (accumulated["start_index"], accumulated["end_index"]) == (ann.start_index, ann.end_index)

    # What was streamed is what was stored.
    stored = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
    assert stored.id == messages[0].id
    assert assert_cites_file(stored, fs.file.id) == label


def test_file_search_run_stream_with_include_sends_content(client: OpenAI, file_search_setup):
    runs_api = client.beta.threads.runs
    if "include" not in inspect.signature(runs_api.stream).parameters:
        pytest.skip(f"openai {SDK_VERSION} runs.stream has no include parameter")
    fs = file_search_setup
    thread = fs_thread(client)
    handler = CitationHandler()
    with runs_api.stream(
        thread_id=thread.id, assistant_id=fs.assistant.id, include=[FS_INCLUDE], event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error
    assert [s.type for s in handler.steps_done] == ["tool_calls", "message_creation"]
    top = file_search_call(handler.steps_done[0], fs.file.id)["results"][0]
    assert top["content"] and top["content"][0]["type"] == "text", top
    assert "lichen dusted with sea salt" in top["content"][0]["text"]
    # include[] shapes that response only: the stored step lists content on request, as before.
    stored = runs_api.steps.list(run.id, thread_id=thread.id, order="asc").data[0]
    assert file_search_call(stored, fs.file.id)["results"][0].get("content") is None


# --------------------------------------------------------------------------------------------
# web_retrieval runs (url_citation)
#
# tests/sdk/run.sh grants the built-in web_retrieval tool one host, a static web server of its
# own, and names its test page in ASSISTANTS_SDK_WEB_URL. Offered `web_fetch`, the fake upstream
# fetches the URL in the user's message; the server reads the page (HTML to text, scripts
# dropped), hands the model a passage labelled 【n:m†<page title>】 and the answer quoting that
# label gets our extension annotation:
#   {"type": "url_citation", "text": label, "start_index": …, "end_index": …, "url": …, "title": …}
# The SDKs have no such union member: they build it leniently (py: as a FileCitationAnnotation
# with the extra keys), so url/title are read with getattr / model_extra.
# --------------------------------------------------------------------------------------------

WEB_URL = os.environ.get("ASSISTANTS_SDK_WEB_URL")
needs_web = pytest.mark.skipif(
    not WEB_URL,
    reason="ASSISTANTS_SDK_WEB_URL is not set: no page the server under test may fetch "
    "(tests/sdk/run.sh serves one and grants web_retrieval when it starts its own server)",
)
WEB_LABEL = re.compile(r"\u3010\d+:\d+\u2020([^\u3011]*)\u3011")  # 【0:0†Page Title】
URL_CITATION_KEYS = {"type", "text", "start_index", "end_index", "url", "title"}


def read_web_page(url: str) -> SimpleNamespace:
    """The test page's title, paragraphs and script text, read straight from the page."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        html = resp.read().decode("utf-8")
    title = re.search(r"<title>([^<]+)</title>", html)
    paragraphs = [p.strip() for p in re.findall(r"<p>([^<]+)</p>", html)]
    script = re.search(r"<script[^>]*>([^<]+)</script>", html)
    assert title and paragraphs and script, f"{url} needs a <title>, <p> paragraphs and a <script>: {html!r}"
    return SimpleNamespace(title=title.group(1).strip(), paragraphs=paragraphs, script=script.group(1).strip())


@pytest.fixture(scope="module")
def web_setup(client: OpenAI):
    page = read_web_page(WEB_URL)
    assistant = client.beta.assistants.create(
        model=MODEL,
        name="sdk-runs-web",
        instructions="Read the pages you are given and cite them.",
        tools=[{"type": "web_retrieval"}],
    )
    assert [t.type for t in assistant.tools] == ["web_retrieval"]
    return SimpleNamespace(page=page, assistant=assistant)


def web_thread(client: OpenAI):
    return client.beta.threads.create(messages=[{"role": "user", "content": f"Please read {WEB_URL}"}])


def extra(obj, key: str):
    """A key the SDK's model does not declare: an attribute, else from model_extra."""
    value = getattr(obj, key, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(key)
    return value


def assert_cites_page(message, page) -> str:
    """The answer quotes the page's label, annotated as a url_citation slicing exactly it."""
    texts = [c.text for c in message.content if c.type == "text"]
    assert len(texts) == 1, message.content
    text = texts[0]
    found = WEB_LABEL.search(text.value)
    assert found, f"no 【n:m†title】 label in {text.value!r}"
    label = found.group(0)
    assert found.group(1) == page.title, label
    assert text.value.rstrip() == f"Found it {label}."
    assert len(text.annotations) == 1, text.annotations
    [ann] = text.annotations
    assert ann.type == "url_citation", ann
    assert ann.text == label
    assert extra(ann, "url") == WEB_URL, ann
    assert extra(ann, "title") == page.title, ann
    assert isinstance(ann.start_index, int) and isinstance(ann.end_index, int), ann
    assert text.value[ann.start_index : ann.end_index] == label, (ann.start_index, ann.end_index, text.value)
    return label


def web_fetch_call(step, page):
    """The single web_fetch function call of a completed tool_calls step, with the page's text."""
    assert step.type == "tool_calls", step.type
    assert step.status == "completed", (step.status, step.last_error)
    [call] = step.step_details.tool_calls
    assert call.type == "function", call
    assert call.id.startswith("call_"), call.id
    assert call.function.name == "web_fetch"
    assert json.loads(call.function.arguments) == {"url": WEB_URL}
    output = call.function.output
    assert isinstance(output, str) and output.startswith("\u3010"), output
    label = WEB_LABEL.match(output)
    assert label and label.group(1) == page.title, output
    assert WEB_URL in output, output
    for paragraph in page.paragraphs:
        assert paragraph in output, (paragraph, output)
    assert page.script not in output, f"the <script> text leaked into the tool output: {output!r}"
    return call


@needs_web
def test_web_retrieval_run_create_and_poll_cites_the_page(client: OpenAI, web_setup):
    web = web_setup
    thread = web_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=web.assistant.id)
    assert run.status == "completed", run.last_error
    assert run.required_action is None, "web_retrieval runs on the server, never as requires_action"
    assert [t.type for t in run.tools] == ["web_retrieval"]
    assert_usage(run.usage)

    msgs = list(client.beta.threads.messages.list(thread.id, order="asc"))
    assert [m.role for m in msgs] == ["user", "assistant"]
    reply = msgs[1]
    assert reply.run_id == run.id
    assert reply.status == "completed"
    label = assert_cites_page(reply, web.page)
    assert assert_cites_page(client.beta.threads.messages.retrieve(reply.id, thread_id=thread.id), web.page) == label

    # On the wire: exactly the url_citation shape, nothing of file_citation.
    status, _, body = raw_request("GET", f"/threads/{thread.id}/messages/{reply.id}")
    assert status == 200, body
    [wire] = body["content"][0]["text"]["annotations"]
    assert set(wire) == URL_CITATION_KEYS, wire
    assert (wire["url"], wire["title"], wire["text"]) == (WEB_URL, web.page.title, label)

    steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_step, message_step = steps
    call = web_fetch_call(tool_step, web.page)
    assert call.function.output.startswith(label), (label, call.function.output)
    assert message_step.step_details.message_creation.message_id == reply.id


@needs_web
# openai 1.26.0 (pydantic 2) warns when dumping the leniently built annotation (type
# "url_citation" in a model declaring "file_citation"); the values are dumped all the same.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_web_retrieval_run_streamed_with_event_handler(client: OpenAI, web_setup):
    web = web_setup
    thread = web_thread(client)
    handler = CitationHandler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=web.assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()

    assert run.status == "completed", run.last_error
    # Same shape as a file_search run: a tool step completed on the server, then the answer,
    # whose annotations arrive in one more thread.message.delta before thread.message.completed.
    assert collapse(handler.events) == FILE_SEARCH_RUN_EVENTS
    assert len(handler.tool_calls_created) == 1, handler.tool_calls_created
    call_id, call_type, function_name = handler.tool_calls_created[0]
    assert (call_type, function_name) == ("function", "web_fetch")
    assert [s.type for s in handler.steps_done] == ["tool_calls", "message_creation"]
    assert web_fetch_call(handler.steps_done[0], web.page).id == call_id

    assert len(messages) == 1
    label = assert_cites_page(messages[0], web.page)
    assert "".join(d for d in handler.deltas if d is not None).rstrip() == f"Found it {label}."
    assert len(handler.annotation_deltas) == 1, handler.annotation_deltas
    [streamed] = handler.annotation_deltas[0]
    assert streamed["index"] == 0
    assert streamed["type"] == "url_citation"
    assert (streamed["text"], streamed["url"], streamed["title"]) == (label, WEB_URL, web.page.title)
    [accumulated] = handler.annotated_snapshots[0]
    assert (accumulated["type"], accumulated["text"]) == ("url_citation", label)
    assert (accumulated["url"], accumulated["title"]) == (WEB_URL, web.page.title)
    ann = messages[0].content[0].text.annotations[0]
    assert (streamed["start_index"], streamed["end_index"]) == (ann.start_index, ann.end_index)
    assert (accumulated["start_index"], accumulated["end_index"]) == (ann.start_index, ann.end_index)

    # What was streamed is what was stored.
    stored = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
    assert stored.id == messages[0].id
    assert assert_cites_page(stored, web.page) == label


# --------------------------------------------------------------------------------------------
# Crawls into vector stores (an extension: POST /vector_stores/{id}/crawls)
#
# tests/sdk/run.sh grants the crawler the same static page web_retrieval reads. The page is
# crawled into a store; a file_search run over that store answers quoting the page's label,
# which is annotated twice on the same span: a file_citation (the crawled file) and our
# url_citation (the page's URL and title, from the file's attributes).
# --------------------------------------------------------------------------------------------


def wait_crawl(vs_id: str, crawl_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _, crawl = raw_request("GET", f"/vector_stores/{vs_id}/crawls/{crawl_id}")
        assert status == 200, crawl
        if crawl["status"] != "in_progress":
            return crawl
        assert time.monotonic() < deadline, f"the crawl is still in progress: {crawl}"
        time.sleep(0.2)


@needs_web
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_file_search_run_cites_a_crawled_page_by_file_and_url(client: OpenAI):
    page = read_web_page(WEB_URL)
    vs = vector_stores(client).create(name=unique("vs-crawl-"))
    status, _, crawl = raw_request("POST", f"/vector_stores/{vs.id}/crawls", {"root_urls": [WEB_URL], "max_depth": 0})
    if status == 400 and "plugins.grants.crawler" in crawl["error"]["message"]:
        pytest.skip("the server under test grants the crawler no site")
    assert status == 200, crawl
    assert crawl["object"] == "vector_store.crawl" and crawl["id"].startswith("vscrawl_"), crawl
    crawl = wait_crawl(vs.id, crawl["id"])
    assert crawl["status"] == "completed", crawl
    assert crawl["page_counts"]["stored"] == 1 and crawl["file_counts"]["completed"] == 1, crawl

    # The page is a file of the store with its URL and title as attributes.
    [vs_file] = list(vector_stores(client).files.list(vector_store_id=vs.id))
    assert vs_file.status == "completed", vs_file.last_error
    attributes = extra(vs_file, "attributes")
    assert attributes["url"] == WEB_URL and attributes["title"] == page.title, attributes

    assistant = client.beta.assistants.create(
        model=MODEL,
        name="sdk-runs-crawled",
        instructions="Search the files and cite what you use.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": FS_QUESTION}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    texts = [c.text for c in reply.content if c.type == "text"]
    assert len(texts) == 1, reply.content
    text = texts[0]
    found = FS_LABEL.search(text.value)
    assert found, f"no 【n:m†file】 label in {text.value!r}"
    label = found.group(0)
    assert [a.type for a in text.annotations] == ["file_citation", "url_citation"], text.annotations
    file_ann, url_ann = text.annotations
    assert file_ann.file_citation.file_id == vs_file.id, file_ann
    assert extra(url_ann, "url") == WEB_URL, url_ann
    assert extra(url_ann, "title") == page.title, url_ann
    for ann in (file_ann, url_ann):
        assert ann.text == label
        assert text.value[ann.start_index : ann.end_index] == label, (ann, text.value)


# ---------------------------------------------------------------------------------------------
# code_interpreter (the server's sandboxed Python; CI installs it before these suites)
# ---------------------------------------------------------------------------------------------

CODE = "x = 6 * 7\nprint(f'x = {x}')\nx + 1"


@pytest.fixture(scope="session")
def code_assistant(client: OpenAI):
    # The server loads the interpreter in the background at start.
    deadline = time.time() + 180
    while True:
        status, _, info = raw_request("GET", "/plugins/code_interpreter")
        assert status == 200, info
        assert info["status"] != "unavailable", (
            f"code_interpreter is unavailable: {info.get('status_reason')} "
            "(run `assistants code-interpreter install` and start the server with its directory)"
        )
        if info["status"] == "ready":
            break
        assert time.time() < deadline, "code_interpreter did not become ready"
        time.sleep(0.5)
    return client.beta.assistants.create(model="sdk-test-model", tools=[{"type": "code_interpreter"}])


def test_code_interpreter_run_streamed_with_event_handler(client: OpenAI, code_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"python: {CODE}"}])

    class Handler(RecordingHandler):
        def __init__(self) -> None:
            super().__init__()
            self.inputs: list[str] = []
            self.logs: list[str] = []

        def on_tool_call_delta(self, delta, snapshot) -> None:  # noqa: ARG002
            if delta.type == "code_interpreter" and delta.code_interpreter:
                if delta.code_interpreter.input:
                    self.inputs.append(delta.code_interpreter.input)
                for out in delta.code_interpreter.outputs or []:
                    if out.type == "logs":
                        self.logs.append(out.logs)

    handler = Handler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=code_assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
        run = stream.get_final_run()

    assert run.status == "completed", run.last_error
    assert len(handler.tool_calls_created) == 1, handler.tool_calls_created
    call_id, call_type, function_name = handler.tool_calls_created[0]
    assert (call_type, function_name) == ("code_interpreter", None)
    # The code arrived in pieces as the model wrote it, and adds up to what it wrote.
    assert len(handler.inputs) >= 2, handler.inputs
    assert "".join(handler.inputs) == CODE
    assert [s.type for s in handler.steps_done] == ["tool_calls", "message_creation"]
    [done] = handler.steps_done[0].step_details.tool_calls
    assert done.id == call_id
    assert done.type == "code_interpreter"
    assert done.code_interpreter.input == CODE
    [logs] = done.code_interpreter.outputs
    assert (logs.type, logs.logs) == ("logs", "x = 42\n43\n")
    assert reply_text(messages[0]).rstrip() == "Tool said: x = 42\n43\n".rstrip()

    # The stored steps say the same.
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    [stored] = [s for s in steps.data if s.type == "tool_calls"][0].step_details.tool_calls
    assert stored.code_interpreter.input == CODE
    assert stored.code_interpreter.outputs[0].logs == "x = 42\n43\n"


def test_code_interpreter_state_persists_across_runs_of_a_thread(client: OpenAI, code_assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "python: total = 40"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=code_assistant.id)
    assert run.status == "completed", run.last_error
    client.beta.threads.messages.create(thread.id, role="user", content="python: total + 2")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=code_assistant.id)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    [call] = [s for s in steps.data if s.type == "tool_calls"][0].step_details.tool_calls
    assert call.code_interpreter.outputs[0].logs == "42\n"


def test_code_interpreter_sandbox_link_becomes_a_file_path_annotation(client: OpenAI, code_assistant):
    # The code writes a file and prints a link to it; the fake model's answer repeats the
    # cell's output, link included.
    code = "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')\nprint('[out](sandbox:/mnt/data/out.csv)')"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"python: {code}"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=code_assistant.id)
    assert run.status == "completed", run.last_error
    [answer] = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data
    text = answer.content[0].text
    [annotation] = text.annotations
    assert annotation.type == "file_path", annotation
    assert annotation.text == "sandbox:/mnt/data/out.csv"
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    file_id = annotation.file_path.file_id
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    assert client.files.content(file_id).read() == b"a,b\n1,2\n"


def test_code_interpreter_figure_becomes_an_image_output_and_image_file(client: OpenAI, code_assistant):
    code = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.title('bars')"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"python: {code}"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=code_assistant.id)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    [call] = [s for s in steps.data if s.type == "tool_calls"][0].step_details.tool_calls
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1, call.code_interpreter.outputs
    file_id = images[0].image.file_id
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    assert client.files.content(file_id).read().startswith(b"\x89PNG\r\n\x1a\n")
    [answer] = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data
    assert [c.type for c in answer.content] == ["text", "image_file"]
    assert answer.content[1].image_file.file_id == file_id


# --------------------------------------------------------------------------------------------
# conversations (the Responses surface; openai >= 1.101)
# --------------------------------------------------------------------------------------------


def test_conversations_and_items(client: OpenAI):
    if not hasattr(client, "conversations"):
        pytest.skip(f"openai {SDK_VERSION} has no conversations resource")
    conv = client.conversations.create(
        metadata={"topic": "demo"},
        items=[
            {"type": "message", "role": "user", "content": "Hello!"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi."}]},
        ],
    )
    assert conv.id.startswith("conv_")
    assert conv.object == "conversation"
    assert conv.metadata == {"topic": "demo"}
    assert_int_ts(conv.created_at)
    assert client.conversations.retrieve(conv.id).id == conv.id

    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [i.type for i in items] == ["message", "message"]
    assert items[0].role == "user"
    assert items[0].content[0].type == "input_text"
    assert items[0].content[0].text == "Hello!"
    assert items[1].content[0].type == "output_text"

    added = client.conversations.items.create(
        conv.id,
        items=[
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
    )
    assert [i.type for i in added.data] == ["function_call", "function_call_output"]
    call = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert call.name == "get_weather"
    assert call.call_id == "call_1"
    # Newest first by default, one page at a time through the SDK's auto-pagination.
    newest = [i.id for i in client.conversations.items.list(conv.id, limit=1)]
    assert newest == [added.data[1].id, added.data[0].id, items[1].id, items[0].id]

    updated = client.conversations.update(conv.id, metadata={"topic": "weather"})
    assert updated.metadata == {"topic": "weather"}
    after = client.conversations.items.delete(items[0].id, conversation_id=conv.id)
    assert after.id == conv.id
    assert len(list(client.conversations.items.list(conv.id))) == 3

    with pytest.raises(openai.BadRequestError) as bad:
        client.conversations.items.create(conv.id, items=[{"type": "message", "role": "robot", "content": "x"}])
    assert assert_error_shape(bad.value, 400)["param"] == "items[0].role"

    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted is True
    assert deleted.id == conv.id
    with pytest.raises(openai.NotFoundError) as gone:
        client.conversations.retrieve(conv.id)
    assert_error_shape(gone.value, 404)


def test_responses_input_tokens(client: OpenAI):
    responses = getattr(client, "responses", None)
    if responses is None or not hasattr(responses, "input_tokens"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.input_tokens")
    one = responses.input_tokens.count(model=MODEL, input="hello")
    assert one.object == "response.input_tokens"
    assert one.input_tokens == 5
    more = responses.input_tokens.count(
        model=MODEL,
        instructions="Answer in French.",
        input=[{"role": "user", "content": "hello"}],
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}],
    )
    assert more.input_tokens > one.input_tokens
    with pytest.raises(openai.NotFoundError) as missing:
        responses.input_tokens.count(model=MODEL, input="x", conversation="conv_missing")
    assert_error_shape(missing.value, 404)


# --------------------------------------------------------------------------------------------
# responses (openai >= 1.66)
# --------------------------------------------------------------------------------------------
RESPONSES_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Look up the weather for a city.",
    "parameters": WEATHER_PARAMS,
}


def responses_or_skip(client: OpenAI):
    responses = getattr(client, "responses", None)
    if responses is None:
        pytest.skip(f"openai {SDK_VERSION} has no responses resource")
    return responses


def test_responses_create_retrieve_input_items_delete(client: OpenAI):
    responses = responses_or_skip(client)
    r = responses.create(model=MODEL, input="hello there", instructions="Be brief.", metadata={"k": "v"})
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.output_text.strip() == "echo: hello there"
    assert r.output[0].type == "message"
    assert r.output[0].content[0].type == "output_text"
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens > 0
    assert r.metadata == {"k": "v"}
    again = responses.retrieve(r.id)
    assert again.id == r.id and again.output_text == r.output_text
    items = list(responses.input_items.list(r.id))
    assert [i.type for i in items] == ["message"]
    assert items[0].role == "user"
    assert items[0].content[0].text == "hello there"
    deleted = responses.delete(r.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError) as gone:
        responses.retrieve(r.id)
    assert_error_shape(gone.value, 404)


def test_responses_function_call_round_trip(client: OpenAI):
    responses = responses_or_skip(client)
    first = responses.create(model=MODEL, input="What is the weather in Paris?", tools=[RESPONSES_WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[RESPONSES_WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}],
    )
    assert second.status == "completed"
    assert second.output_text.strip() == "Tool said: sunny, 24 C"
    assert second.previous_response_id == first.id


def test_responses_stream_events_and_final_response(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "stream"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.stream")
    seen = []
    text = ""
    with responses.stream(model=MODEL, input="stream me") as stream:
        for event in stream:
            seen.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert seen[0] == "response.created" and seen[-1] == "response.completed", seen
    assert "response.output_item.added" in seen and "response.output_item.done" in seen
    assert text == final.output_text
    assert final.output_text.strip() == "echo: stream me"


def test_responses_stream_function_call_arguments(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "stream"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.stream")
    with responses.stream(model=MODEL, input="weather in Paris please", tools=[RESPONSES_WEATHER]) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call"
    assert deltas == call.arguments
    assert json.loads(call.arguments) == {"city": "Paris"}


def test_responses_in_a_conversation(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(client, "conversations"):
        pytest.skip(f"openai {SDK_VERSION} has no conversations resource")
    conv = client.conversations.create()
    responses.create(model=MODEL, conversation=conv.id, input="first question")
    second = responses.create(model=MODEL, conversation=conv.id, input="second question")
    assert second.output_text.strip() == "echo: second question"
    items = list(client.conversations.items.list(conv.id, order="asc"))
    roles = [(i.type, i.role) for i in items]
    assert roles == [("message", "user"), ("message", "assistant")] * 2, roles
    assert items[3].id == second.output[0].id


def test_responses_background_polled(client: OpenAI):
    responses = responses_or_skip(client)
    r = responses.create(model=MODEL, input="in the background", background=True)
    assert r.status in ("queued", "in_progress", "completed")
    deadline = time.time() + 30
    while r.status in ("queued", "in_progress") and time.time() < deadline:
        time.sleep(0.1)
        r = responses.retrieve(r.id)
    assert r.status == "completed"
    assert r.output_text.strip() == "echo: in the background"
    # Only background responses can be cancelled; a finished one stays as it is.
    assert responses.cancel(r.id).status == "completed"
    fg = responses.create(model=MODEL, input="foreground")
    with pytest.raises(openai.BadRequestError) as refused:
        responses.cancel(fg.id)
    assert_error_shape(refused.value, 400)


def test_responses_parse_structured_output(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "parse"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.parse")
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    parsed = responses.parse(model=MODEL, input="a city", text_format=City)
    assert parsed.output_parsed == City(name="echo", population=0)


def test_responses_bad_request(client: OpenAI):
    responses = responses_or_skip(client)
    with pytest.raises(openai.BadRequestError) as bad:
        responses.create(model=MODEL, input="x", max_output_tokens=1)
    assert assert_error_shape(bad.value, 400)["param"] == "max_output_tokens"
    with pytest.raises(openai.NotFoundError) as missing:
        responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
    assert_error_shape(missing.value, 404)


def test_responses_background_stream_resumed(client: OpenAI):
    responses = responses_or_skip(client)
    if "starting_after" not in inspect.signature(responses.retrieve).parameters:
        pytest.skip(f"openai {SDK_VERSION} cannot stream a response again")
    first = list(responses.create(model=MODEL, input="resume me", background=True, stream=True))
    assert first[0].type == "response.created" and first[-1].type == "response.completed"
    rid = first[0].response.id
    again = list(responses.retrieve(rid, stream=True, starting_after=2))
    assert [(e.type, e.sequence_number) for e in again] == [
        (e.type, e.sequence_number) for e in first[3:]
    ]
    assert again[-1].response.output_text == first[-1].response.output_text


def test_responses_compact_then_continue(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "compact"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.compact")
    first = responses.create(model=MODEL, input="remember the number 42")
    compacted = responses.compact(model=MODEL, previous_response_id=first.id)
    assert compacted.object == "response.compaction"
    kinds = [o.type for o in compacted.output]
    assert kinds == ["message", "compaction"], kinds
    assert compacted.usage.total_tokens > 0
    nxt = responses.create(
        model=MODEL,
        input=[o.model_dump(exclude_none=True) for o in compacted.output] + [{"role": "user", "content": "go on"}],
    )
    assert nxt.output_text.strip() == "echo: go on"


def test_responses_reasoning_item_streamed_and_kept(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "stream"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.stream")
    with responses.stream(model=MODEL, input="think: the sky") as stream:
        reasoning = "".join(e.delta for e in stream if e.type == "response.reasoning_text.delta")
        final = stream.get_final_response()
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert reasoning.strip() == "Thinking about the sky."
    assert final.output[0].content[0].text == reasoning
    assert final.output_text.strip() == "echo: think: the sky"


# --------------------------------------------------------------------------------------------
# Remote MCP servers (the `mcp` tool). run.sh starts a fake MCP server (rmcp, streamable HTTP:
# tools add, echo_header, fail, delete_file) and grants it; the fake upstream calls
# "mcp: NAME {json}".
# --------------------------------------------------------------------------------------------

MCP_URL = os.environ.get("ASSISTANTS_SDK_MCP_URL")
needs_mcp = pytest.mark.skipif(
    not MCP_URL,
    reason="ASSISTANTS_SDK_MCP_URL is not set: no MCP server the server under test may reach "
    "(tests/sdk/run.sh starts one and grants it when it starts its own server)",
)


def mcp_tool(**extra) -> dict:
    return {"type": "mcp", "server_label": "calc", "server_url": MCP_URL, **extra}


@needs_mcp
def test_responses_mcp_tools_listed_and_called(client: OpenAI):
    responses = responses_or_skip(client)
    r = responses.create(
        model=MODEL,
        input='mcp: add {"a": 2, "b": 3}',
        tools=[mcp_tool(require_approval="never", headers={"Authorization": "Bearer sk-sdk-0123456789"})],
    )
    assert [o.type for o in r.output] == ["mcp_list_tools", "mcp_call", "message"], r.output
    listed = r.output[0]
    assert listed.server_label == "calc"
    assert {t.name for t in listed.tools} == {"add", "echo_header", "fail", "delete_file"}
    call = r.output[1]
    assert (call.name, call.output, call.server_label) == ("add", "5", "calc")
    assert json.loads(call.arguments) == {"a": 2, "b": 3}
    assert r.output_text.strip() == "Tool said: 5"
    assert "sk-sdk" not in r.model_dump_json()
    again = responses.retrieve(r.id)
    assert [o.type for o in again.output] == ["mcp_list_tools", "mcp_call", "message"]


@needs_mcp
def test_responses_mcp_approval_round_trip(client: OpenAI):
    responses = responses_or_skip(client)
    tools = [mcp_tool()]
    first = responses.create(model=MODEL, input='mcp: delete_file {"path": "/tmp/sdk.txt"}', tools=tools)
    assert [o.type for o in first.output] == ["mcp_list_tools", "mcp_approval_request"], first.output
    request = first.output[1]
    assert request.name == "delete_file" and request.server_label == "calc"
    second = responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=tools,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    assert [o.type for o in second.output] == ["mcp_call", "message"], second.output
    call = second.output[0]
    assert call.approval_request_id == request.id
    assert call.output == "deleted /tmp/sdk.txt"
    assert second.output_text.strip() == "Tool said: deleted /tmp/sdk.txt"


@needs_mcp
def test_responses_mcp_stream_events(client: OpenAI):
    responses = responses_or_skip(client)
    if not hasattr(responses, "stream"):
        pytest.skip(f"openai {SDK_VERSION} has no responses.stream")
    seen = []
    with responses.stream(
        model=MODEL, input='mcp: add {"a": 1, "b": 1}', tools=[mcp_tool(require_approval="never")]
    ) as stream:
        args = ""
        for event in stream:
            seen.append(event.type)
            if event.type == "response.mcp_call_arguments.delta":
                args += event.delta
        final = stream.get_final_response()
    for expected in [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
    ]:
        assert expected in seen, seen
    assert json.loads(args) == {"a": 1, "b": 1}
    assert final.output[1].output == "2"
    assert final.output_text.strip() == "Tool said: 2"
