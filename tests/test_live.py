"""Against the real KIE API: opt-in with KIE_LIVE_TESTS=1 and a KIE_API_KEY. Spends at most one 8-credit image,
and only with KIE_LIVE_SPEND=1 as well.

These never run in CI. They check what the simulator can only imitate: the envelope, the credit balance,
and one real task end to end on the cheapest model.
"""

from __future__ import annotations

import os

import pytest

from kie_mcp.config import Settings
from kie_mcp.kie import FAMILIES, KieClient, TaskState
from kie_mcp.spend import grant

pytestmark = pytest.mark.skipif(
    os.environ.get("KIE_LIVE_TESTS") != "1" or not os.environ.get("KIE_API_KEY"),
    reason="live KIE tests are opt-in: set KIE_LIVE_TESTS=1 and KIE_API_KEY",
)


@pytest.fixture
async def live():
    settings = Settings.from_env()
    assert settings.api_key is not None
    client = KieClient(
        api_key=settings.api_key.get_secret_value(),
        base_url=settings.base_url,
        upload_base_url=settings.upload_base_url,
    )
    yield client
    await client.aclose()


@pytest.mark.live
async def test_live_credit_balance(live):
    assert await live.credits() >= 0


@pytest.mark.live
async def test_live_unknown_task_is_422(live):
    with pytest.raises(Exception, match="422"):
        await live.find_task("kie-mcp-live-test-no-such-task")


@pytest.mark.live
@pytest.mark.skipif(os.environ.get("KIE_LIVE_SPEND") != "1", reason="spending 8 credits needs KIE_LIVE_SPEND=1 too")
async def test_live_cheapest_image_end_to_end(live):
    import anyio

    body = {"model": "nano-banana-2", "input": {"prompt": "a red apple on a white table", "resolution": "1K"}}
    task_id = await live.create(FAMILIES["market"], "nano-banana-2", body, grant("nano-banana-2", 1, "quote", 8))
    for _ in range(60):
        status = await live.status(FAMILIES["market"], task_id)
        if status.state.finished:
            break
        await anyio.sleep(5)
    assert status.state is TaskState.SUCCEEDED, status
