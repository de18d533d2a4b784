"""Promise: Grok Imagine Image 2.0's segment tools are catalogued as KIE's own model list of 2026-10-06 has them, and
each goes through the gate like any model.

- ``grok-imagine-image-2-0/segment-map`` numbers the parts of a picture: a Grok Image 2.0 task's (``task_id``) or one
  image given, never both and never neither, refused before anything is sent. KIE's price text calls it free; the
  gate takes no price of 0 on trust (it would count an unknown price, the whole per-call cap, for as long as KIE
  reports no charge), so a map is quoted at 0 and counted at a Grok Image 2.0 picture's 4 credits: a person
  approves it unless the auto-approve limit covers 4.
- ``grok-imagine-image-2-0/segment-edit`` repaints the segments named by number (``mask_indexs``, a list of whole
  numbers of at least 1, at least one of them) of a task, from a prompt, for 4 credits; a list KIE would refuse
  (a 0, a word, an empty list) is refused here first, naming the field.

Each kept against the simulator through the real MCP client in both protocol eras.
"""

from __future__ import annotations

from .conftest import answering, text_of
from .test_followups import MARKET, requests_to, spent_today

SEGMENT_MAP = "grok-imagine-image-2-0/segment-map"
SEGMENT_EDIT = "grok-imagine-image-2-0/segment-edit"
PICTURE = "https://example.com/poster.png"


async def test_a_segment_map_then_a_segment_edit_are_sent_as_kie_documents_them_and_counted_by_the_gate(
    connect, controls
):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", {"model": SEGMENT_MAP, "images": [PICTURE]})
        mapped = await client.call_tool(
            "generate_image", {"model": SEGMENT_MAP, "prompt": "", "images": [PICTURE], "wait_seconds": 30}
        )
        asked_for_the_map = len(seen)
        source = mapped.structured_content["tasks"][0]["task_id"]
        edited = await client.call_tool(
            "generate_image",
            {
                "model": SEGMENT_EDIT,
                "prompt": "make the hat red",
                "options": {"task_id": source, "mask_indexs": [2, 3]},
                "wait_seconds": 30,
            },
        )
        spent = await spent_today(client)
    quote = estimate.structured_content["quote"]
    assert (quote["credits_total"], quote["credits_counted"]) == (0, 4), text_of(estimate)
    assert "takes no price of 0 on trust" in text_of(estimate)
    assert not estimate.structured_content["auto_approved"]
    assert asked_for_the_map == 1  # auto-approve is off: a person approved the free map too
    for made in (mapped, edited):
        assert made.structured_content["tasks"][0]["state"] == "succeeded", text_of(made)
    assert spent == 8  # 4 counted for the map, 4 for the edit
    sent = {r["body"]["model"]: r["body"]["input"] for r in await requests_to(controls, MARKET)}
    assert sent[SEGMENT_MAP] == {"image_url": PICTURE}
    assert sent[SEGMENT_EDIT] == {"prompt": "make the hat red", "task_id": source, "mask_indexs": [2, 3]}


async def test_segment_requests_kie_would_refuse_are_refused_before_anything_is_sent(connect, controls):
    edit = {"model": SEGMENT_EDIT, "prompt": "make the hat red"}
    async with connect(elicitation=answering()) as client:
        answers = {
            "map of neither": await client.call_tool("estimate_cost", {"model": SEGMENT_MAP}),
            "map of both": await client.call_tool(
                "estimate_cost", {"model": SEGMENT_MAP, "images": [PICTURE], "options": {"task_id": "t1"}}
            ),
            "edit of no task": await client.call_tool("estimate_cost", {**edit, "options": {"mask_indexs": [1]}}),
            "segment 0": await client.call_tool(
                "generate_image", {**edit, "options": {"task_id": "t1", "mask_indexs": [1, 0]}}
            ),
            "a word": await client.call_tool(
                "generate_image", {**edit, "options": {"task_id": "t1", "mask_indexs": ["hat"]}}
            ),
            "no segment": await client.call_tool(
                "generate_image", {**edit, "options": {"task_id": "t1", "mask_indexs": []}}
            ),
        }
    said = {name: text_of(answer) for name, answer in answers.items()}
    assert all(answer.is_error for answer in answers.values()), said
    assert "or options.task_id" in said["map of neither"], said
    assert "task_id or an image, not both" in said["map of both"], said
    assert "options.task_id: is required" in said["edit of no task"], said
    assert "options.mask_indexs: every item must be at least 1; 0 is not" in said["segment 0"], said
    assert "options.mask_indexs: expected a list of whole numbers" in said["a word"], said
    assert "options.mask_indexs: has 0 item(s); allowed at least 1" in said["no segment"], said
    assert await controls.creates() == []


async def test_a_segment_edit_of_no_grok_image_2_task_is_refused_by_kie_and_costs_nothing(connect, controls):
    """The review: the simulator made and charged a segment edit of a task it never held (and would of another
    model's task), which KIE refuses: its task_id is "an existing grok-imagine-image-2-0 task". It answers 422 as KIE
    does for an unknown task, charging nothing; an edit of a Grok Image 2.0 task it made still goes through."""
    before = (await controls.get("state"))["balances"]["default"]
    async with connect(auto_approve_credits=10) as client:
        other = await client.call_tool(
            "generate_image", {"model": "nano-banana-2", "prompt": "a hat", "wait_seconds": 30}
        )
        other_task = other.structured_content["tasks"][0]["task_id"]
        edits = {
            task_id: await client.call_tool(
                "generate_image",
                {
                    "model": SEGMENT_EDIT,
                    "prompt": "make the hat red",
                    "options": {"task_id": task_id, "mask_indexs": [1]},
                    "wait_seconds": 30,
                },
            )
            for task_id in ("no-such-task", other_task)
        }
    for task_id, edit in edits.items():
        assert edit.structured_content["status"] == "failed", (task_id, text_of(edit))
        assert not [t for t in edit.structured_content["tasks"] if t.get("task_id")], text_of(edit)
    after = (await controls.get("state"))["balances"]["default"]
    assert before - after == 8  # the Nano Banana 2 picture only
