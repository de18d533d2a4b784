"""A result link that does not serve the file is renewed once through KIE's download-url, and what the answer says
then is what to do, each promise kept against the simulator through the real MCP client, in both protocol eras:

- an expired link that answers with an error message and HTTP 200 (JSON, plain text, XML or a web page, as object
  stores and their front ends do) instead of 403 gets one fresh link, and the result is saved from it;
- a link refused with a status asking again cannot mend (400, 401, 451) gets one fresh link too;
- when the fresh link fails as well, the answer says kie-mcp tries again, that check_task tries at once and where KIE
  shows the task: never to check a URL the user never gave, never that the links still work.
"""

from __future__ import annotations

from .conftest import answering, eras_in_turn, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 20}
DOWNLOAD_URL = "/api/v1/common/download-url"
PAGES = ["json", "text", "xml", "html"]
CODES = [400, 401, 451]
# Advice an answer about a link that did not serve the file must never give
WRONG = ("Check the URL", "belongs to this result", "still work")


async def fetches(controls) -> list[str]:
    """The result-file GETs (of the first link, of a fresh one) and the download-url calls, in the order made."""
    named = []
    for request in (await controls.get("requests"))["requests"]:
        path = request["path"]
        if path.startswith(("/files/", "/dl/")) or path == DOWNLOAD_URL:
            named.append("link" if path.startswith("/files/") else "fresh" if path.startswith("/dl/") else "renewed")
    return named


def said_what_to_do(text: str) -> None:
    assert "check_task" in text and "https://kie.ai/logs" in text, text
    for wrong in WRONG:
        assert wrong not in text, text


@eras_in_turn("page", PAGES)
async def test_a_link_expired_into_an_error_message_with_200_is_renewed_once_and_saved(
    connect, controls, tmp_path, page
):
    """The audit: a link that had expired answered with HTTP 200 and a JSON error was called "the file is JSON
    text ... Check that this URL belongs to this result", never renewed, and fetched seven times in the background."""
    await controls.post("config", {"result_url_ttl_seconds": 0.001, "expired_link_page": page})
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    task = made.structured_content["tasks"][0]
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size > 0
    assert "nothing was saved" not in text_of(made), text_of(made)
    assert await fetches(controls) == ["link", "renewed", "fresh"]


async def test_a_fresh_link_answering_an_error_message_too_says_what_to_do(connect, controls):
    await controls.post(
        "config",
        {"result_url_ttl_seconds": 0.001, "download_url_ttl_seconds": 0.001, "expired_link_page": "json"},
    )
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    assert not made.structured_content["tasks"][0]["files"]
    text = text_of(made)
    assert "answered with JSON text instead of the file" in text and "fresh link" in text, text
    said_what_to_do(text)
    assert (await fetches(controls))[:3] == ["link", "renewed", "fresh"]  # the background may be trying again


@eras_in_turn("code", CODES)
async def test_a_link_refused_with_a_status_asking_again_cannot_mend_is_renewed_once_and_saved(
    connect, controls, tmp_path, code
):
    await controls.fault("files", kind="code", code=code)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    [saved] = made.structured_content["tasks"][0]["files"]
    assert (tmp_path / saved).stat().st_size > 0
    assert "nothing was saved" not in text_of(made), text_of(made)
    assert await fetches(controls) == ["link", "renewed", "fresh"]


@eras_in_turn("code", CODES)
async def test_a_link_refused_and_its_fresh_one_too_says_what_to_do_not_to_check_a_url(connect, controls, code):
    """The audit: a 401, 400 or 451 answered "Check the URL" to a user who gave none, then "The result links still
    work for a while", which they did not."""
    await controls.fault("files", kind="code", code=code, times=-1)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    assert not made.structured_content["tasks"][0]["files"]
    text = text_of(made)
    assert f"(HTTP {code})" in text and "fresh link from download-url" in text, text
    said_what_to_do(text)
    assert (await fetches(controls))[:3] == ["link", "renewed", "fresh"]  # the background may be trying again
