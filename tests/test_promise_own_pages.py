"""A page the user wrote in outputs/ is never replaced by the gallery.

The audit: a page of the user's own at ``outputs/index.html`` (a hand-made portfolio) or in a session folder was
silently written over at the next saved result: only an ``outputs/`` linked to a folder of the user's kept its pages.
Now no page that does not carry kie-mcp's mark is ever replaced, wherever outputs/ is: kie-mcp's page goes beside it
as ``kie-mcp-gallery.html``, which the other pages link to and list_tasks names, saying why; once the user's page is
gone, the gallery's is ``index.html`` again.

Through the real MCP client against the simulator, in both protocol eras.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from kie_mcp.media import gallery, saved
from kie_mcp.media.downloads import output_folder

from .conftest import answering, text_of

MINE = "<!doctype html><title>My portfolio</title><h1>My hand-made portfolio of the best shots</h1>\n"
REQUEST = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2", "session": "shoot"}


async def test_a_page_of_the_users_own_in_outputs_is_never_replaced_and_the_gallery_goes_beside_it(connect, tmp_path):
    outputs = tmp_path / "outputs"
    folder = output_folder(tmp_path, "shoot", date.today())  # where the session's results go today
    folder.mkdir(parents=True)
    for page in (outputs / gallery.PAGE, folder / gallery.PAGE):
        page.write_text(MINE)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", REQUEST)
        listed = await client.call_tool("list_tasks", {})
        index = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        session = (await client.read_resource(f"kie://outputs/{folder.name}/index.html")).contents[0].text
    assert made.structured_content["status"] == "completed", text_of(made)
    [path] = made.structured_content["tasks"][0]["files"]
    assert Path(path).parent.name == folder.name
    for page in (outputs / gallery.PAGE, folder / gallery.PAGE):
        assert page.read_text() == MINE, page  # left as the user wrote it
    own_index, own_session = outputs / gallery.OWN_INDEX, folder / gallery.OWN_INDEX
    assert saved.is_own_page(own_index) and saved.is_own_page(own_session)
    assert REQUEST["prompt"] in own_session.read_text(encoding="utf-8")
    assert f'href="{folder.name}/{gallery.OWN_INDEX}"' in own_index.read_text(encoding="utf-8")  # not the user's
    assert f'href="../{gallery.OWN_INDEX}">All sessions' in own_session.read_text(encoding="utf-8")
    assert listed.structured_content["gallery"] == str(own_index), text_of(listed)
    assert "outputs/index.html there is a page of your own, left as it is" in text_of(listed), text_of(listed)
    for served in (index, session):  # the resources serve kie-mcp's pages, never the user's
        assert REQUEST["prompt"] in served and "portfolio" not in served

    for page in (outputs / gallery.PAGE, folder / gallery.PAGE):
        page.unlink()  # the user moved their pages away
    async with connect(elicitation=answering()) as client:
        again = await client.call_tool("generate_image", {**REQUEST, "prompt": "A green pear"})
        listed = await client.call_tool("list_tasks", {})
    assert again.structured_content["status"] == "completed", text_of(again)
    assert listed.structured_content["gallery"] == str(outputs / gallery.PAGE), text_of(listed)
    for page in (outputs / gallery.PAGE, folder / gallery.PAGE):
        assert saved.is_own_page(page) and "A green pear" in page.read_text(encoding="utf-8")
    assert not own_index.exists() and not own_session.exists()
