"""Promises about the input files a spend sends to KIE's public file host, kept through the real MCP client against
the simulator, in both protocol eras:

- the estimate, the confirmation form and the confirmation to approve in the chat name each input file by its whole
  file name, however long its path: the folders are cut in the middle, never the name;
- the confirmation to approve in the chat (the only one a client without forms shows) names the settings and the
  input files it approves, as the estimate and the form do.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from .conftest import answering, text_of

IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}  # 8 credits
APPROVED = "references/clients/acme-relaunch-2026/hero-shots/approved/" + "round-two/" * 12
NAMES = ("product-front.png", "passport-scan-private.png")


def picture(path: Path, colour: tuple[int, int, int] = (30, 90, 160)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 480), colour).save(path)


def named_inputs(text: str) -> list[str]:
    """The input files a confirmation text names, as it shows them (in JSON's quotes)."""
    listed = re.search(r"input files?: (.*?)(?:\. |\.$)", text)
    assert listed, text
    return re.findall(r'"((?:[^"\\]|\\.)*)"', listed[1])


async def test_a_long_path_s_file_name_is_shown_whole_in_the_estimate_the_form_and_the_chat_confirmation(
    connect, controls, tmp_path
):
    """The audit: every input path was cut at 60 characters, its file name lost: two pictures in one deep folder
    (a product shot and a passport scan) read the same in the question that approves their upload, and an absolute
    path lost its name whatever it was. The name is now shown whole; the folders are cut in the middle."""
    for n, name in enumerate(NAMES):
        picture(tmp_path / APPROVED / name, (30 + 100 * n, 90, 160))
    absolute = str(tmp_path / APPROVED / NAMES[1])
    request = {**IMAGE, "images": [APPROVED + NAMES[0], APPROVED + NAMES[1], absolute]}
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as asking:
        estimate = await asking.call_tool("estimate_cost", request)
        await asking.call_tool("generate_image", request)
    async with connect() as without_forms:
        chat = await without_forms.call_tool("generate_image", request)
    assert chat.structured_content["status"] == "confirmation_required", text_of(chat)
    for text in (estimate.structured_content["message"], seen[0], chat.structured_content["message"]):
        shown = named_inputs(text)
        assert [item.rsplit("/", 1)[-1] for item in shown] == [*NAMES, NAMES[1]], text
        assert all(item.startswith("references/clients/") for item in shown[:2]), text
        assert shown[2].startswith(str(tmp_path)[:20]), text  # the absolute path's start, its end and its name
        assert all("\u2026" in item and len(item) <= 165 for item in shown), text  # cut in the folders
        assert all(item.endswith("/round-two/" + item.rsplit("/", 1)[-1]) for item in shown), text
    assert await controls.creates() == []


async def test_a_file_name_too_long_to_show_whole_is_cut_in_its_middle_and_keeps_its_extension(connect, tmp_path):
    name = "campaign-" + "hero-variant-" * 14 + "final.png"  # 200 characters
    picture(tmp_path / "references" / name)
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", {**IMAGE, "images": [f"references/{name}"]})
    [shown] = named_inputs(estimate.structured_content["message"])
    assert shown.startswith("references/campaign-hero-variant-") and shown.endswith("-final.png"), shown
    assert "\u2026" in shown and len(shown) <= 165, shown


async def test_the_chat_confirmation_names_the_settings_and_the_files_it_approves(connect, controls, tmp_path):
    """The audit: on a client without forms (Claude Desktop) the confirmation to approve in the chat is the only
    one, and it gave the cost and a quote_id but neither the settings nor the files to be published on KIE's file
    host. It now says them as the estimate and the form do."""
    picture(tmp_path / "references" / "serum-bottle.png")
    request = {**IMAGE, "images": ["references/serum-bottle.png", "https://example.com/look-1.png"]}
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
        chat = await client.call_tool("generate_image", request)
    assert chat.structured_content["status"] == "confirmation_required", text_of(chat)
    settings = estimate.structured_content["message"].split("Settings: ", 1)[1].split(". quote_id=")[0]
    assert '2 input files: "references/serum-bottle.png"; "https://example.com/look-1.png"' in settings
    assert f"Settings: {settings}. " in chat.structured_content["message"], text_of(chat)
    assert chat.structured_content["message"].index("Settings: ") < chat.structured_content["message"].index(
        "The user must approve"
    )
    assert await controls.creates() == []
