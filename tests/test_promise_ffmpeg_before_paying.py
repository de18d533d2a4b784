"""A workflow that ends in a join or burned-in captions says before anything is paid for when there is no ffmpeg.

The default install (``uv tool install``, ``uvx --from``) has no ffmpeg. An animated ad paid for every storyboard
still and clip (1,200-2,000 credits) and only its last step, the join, failed: "Stitching videos needs ffmpeg". The
plan now looks for ffmpeg as stitch_videos does and, when there is none, starts with a step 0 carrying
stitch_videos' own install advice; with ffmpeg the plan is what it was, word for word.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from kie_mcp.media.stitch import INSTALL_HELP, StitchError, find_ffmpeg

from .conftest import eras_in_turn, text_of
from .test_prompts import ARGUMENTS, _render

CLIPS = Path(__file__).resolve().parents[1] / "src" / "kie_mcp" / "sandbox" / "clips"
JOINED = ("influencer_recreation", "product_showcase", "ugc_video", "script_to_video", "animated_ad")
UNJOINED = ("character_sheet", "ugc_product_selfie")


def _hide_ffmpeg(mp: pytest.MonkeyPatch) -> None:
    """No ffmpeg, as in a default install: kie-mcp's video extra not importable and no ``ffmpeg`` on PATH."""
    which = shutil.which
    mp.setitem(sys.modules, "imageio_ffmpeg", None)  # the import fails as if the extra were absent
    mp.setattr(shutil, "which", lambda cmd, *args, **kwargs: None if cmd == "ffmpeg" else which(cmd, *args, **kwargs))


@pytest.fixture
def with_ffmpeg() -> str:
    try:
        return find_ffmpeg()
    except StitchError as err:
        pytest.skip(f"no ffmpeg: {err}")


@eras_in_turn("name", JOINED)
async def test_a_plan_ending_in_a_join_or_captions_says_first_that_ffmpeg_is_missing(
    connect, monkeypatch, with_ffmpeg, name
):
    """Without ffmpeg the plan starts with step 0: the finished piece needs ffmpeg, how to get it (stitch_videos'
    own words), and that the clips can still be made and joined later. With ffmpeg, the same plan without it."""
    async with connect() as client:
        with monkeypatch.context() as mp:
            _hide_ffmpeg(mp)
            without = await _render(client, name, ARGUMENTS[name])
        present = await _render(client, name, ARGUMENTS[name])
    lines = without.splitlines()
    first = next(at for at, line in enumerate(lines) if line[:1].isdigit())
    step0 = lines[first]
    assert step0.startswith("0. Before anything is estimated or paid for, tell the user:"), step0
    assert lines[first + 1].startswith("1. ")  # before every paid step
    assert INSTALL_HELP in step0  # the install advice stitch_videos gives, one text
    assert "stitch_videos once ffmpeg is installed" in step0 and "can still be made now" in step0
    assert "\n".join(lines[:first] + lines[first + 1 :]) == present  # otherwise the plan is the one with ffmpeg
    assert "\n0. " not in present and "ffmpeg" not in present


@pytest.mark.parametrize("name", UNJOINED)
async def test_a_plan_with_no_join_says_nothing_of_ffmpeg(connect, monkeypatch, name):
    """Stills only: nothing needs ffmpeg, and nothing is said of it."""
    _hide_ffmpeg(monkeypatch)
    async with connect() as client:
        plan = await _render(client, name, ARGUMENTS[name])
    assert "\n0. " not in plan and "ffmpeg" not in plan


async def test_the_advice_of_step_0_is_what_stitch_videos_answers_without_ffmpeg(connect, monkeypatch, tmp_path):
    """One source: the plan's advice is the very text stitch_videos' refusal carries."""
    folder = tmp_path / "references"
    folder.mkdir()
    for clip in ("9x16.mp4", "16x9.mp4"):
        shutil.copyfile(CLIPS / clip, folder / clip)
    _hide_ffmpeg(monkeypatch)
    async with connect() as client:
        plan = await _render(client, "animated_ad", ARGUMENTS["animated_ad"])
        joined = await client.call_tool(
            "stitch_videos", {"clips": ["references/9x16.mp4", "references/16x9.mp4"], "session": "oat-milk-ad"}
        )
    assert joined.is_error and INSTALL_HELP in text_of(joined), text_of(joined)
    assert INSTALL_HELP in plan
