"""A join is saved under the name asked for, or the answer says which name it has and why.

The audit's cases, through the MCP client: ``output_name="夏季广告.mp4"`` and ``"إعلان الصيف"`` were both saved as
``stitched-2-clips.mp4``, the answer silent about the name dropped, in a folder named ``...-mp4-8f8c43e5`` (the
extension made part of it). kie-mcp names every file and folder it saves in plain ASCII (``output_folder``): a name
ASCII spells is kept (accents dropped), one whose letters it cannot spell keeps 8 characters of its hash, the same its
folder has, so two such joins never share a name; and the answer names the file and says why it differs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .conftest import dated, text_of


def _clip(ffmpeg: str, path: Path) -> str:
    source = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", *source, *encode, str(path)], check=True)
    return path.name


async def test_a_join_named_in_letters_ascii_cannot_spell_is_kept_apart_and_said(connect, ffmpeg, tmp_path):
    clip = _clip(ffmpeg, tmp_path / "a.mp4")
    async with connect() as client:
        answers = {
            name: await client.call_tool("stitch_videos", {"clips": [clip, clip], "output_name": name})
            for name in ("夏季广告.mp4", "إعلان الصيف", "soirée d'été.mov", "final.mp4")
        }
    paths = {name: dated(answer.structured_content["path"]) for name, answer in answers.items()}
    for name in ("夏季广告.mp4", "إعلان الصيف"):
        found = re.fullmatch(r"outputs/TODAY-([0-9a-f]{8})/([0-9a-f]{8})\.mp4", paths[name])
        assert found and found[1] == found[2], paths[name]  # the folder and the file: one name, no ".mp4" in it
        said = f'output_name "{name}" is saved as {found[2]}.mp4'
        assert said in text_of(answers[name]) and "letters ASCII cannot spell" in text_of(answers[name])
    assert paths["夏季广告.mp4"] != paths["إعلان الصيف"]  # two names, two joins: never both the default's
    assert paths["soirée d'été.mov"] == "outputs/TODAY-soiree-d-ete/soiree-d-ete.mp4"
    told = text_of(answers["soirée d'été.mov"])
    assert 'output_name "soirée d\'été.mov" is saved as soiree-d-ete.mp4' in told, told
    assert "joins are always written as MP4 files" in told and "ASCII letters, digits" in told, told
    assert paths["final.mp4"] == "outputs/TODAY-final/final.mp4"
    assert "output_name" not in text_of(answers["final.mp4"])  # the name asked for: nothing to say
    assert all((tmp_path / answer.structured_content["path"]).is_file() for answer in answers.values())
