"""Cost of writing a message to the stdio wire, per message (run: uv run python bench/bench_writer.py [--rounds 40]).

Every message kie-mcp sends over stdio is serialized where it is sent (``stdio.written``) and the SDK's writer is
handed that text, so a message with lone surrogates in it (a path in bytes that are not UTF-8) is mended instead of
ending the session. The baseline is the SDK's writer alone: one ``model_dump_json`` of the message, as it runs when
nothing is mended. Three real answers are timed, taken from a sandboxed server in process: ``tools/list`` (the
largest message a session sends), an ``estimate_cost`` and a ``check_credits`` answer. CPU time of this thread
(``time.thread_time``), baseline and kie-mcp in turn, so a busy machine slows both alike; prints the minimum and
the median microseconds per message. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from mcp import Client
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCResponse
from pydantic import SecretStr

from kie_mcp import stdio
from kie_mcp.config import Settings
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.server import create_server


async def answers() -> dict[str, JSONRPCResponse]:
    """The three answers, as the JSON-RPC responses a session writes."""
    workspace = Path(tempfile.mkdtemp(prefix="bench-writer-"))
    settings = Settings(api_key=SecretStr(SANDBOX_API_KEY), workspace=workspace, catalog_sync=False).for_sandbox()
    async with Client(create_server(settings)) as client:
        results = {
            "tools/list": await client.list_tools(),
            "estimate_cost": await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "an apple"}),
            "check_credits": await client.call_tool("check_credits", {}),
        }
    return {
        name: JSONRPCResponse(jsonrpc="2.0", id=7, result=result.model_dump(by_alias=True, exclude_none=True))
        for name, result in results.items()
    }


def sdk_writer(message: JSONRPCResponse) -> str:
    """The SDK's stdio writer alone: one serialization."""
    return SessionMessage(message).message.model_dump_json(by_alias=True, exclude_unset=True)


def kie_mcp_writer(message: JSONRPCResponse) -> str:
    """kie-mcp's: serialized where it is sent, then the SDK's writer asks for that text."""
    return stdio.written(SessionMessage(message)).message.model_dump_json(by_alias=True, exclude_unset=True)


def cpu_us(write: Callable[[JSONRPCResponse], str], message: JSONRPCResponse, times: int) -> float:
    started = time.thread_time()
    for _ in range(times):
        write(message)
    return (time.thread_time() - started) / times * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    for name, message in anyio.run(answers).items():
        size = len(sdk_writer(message))
        assert kie_mcp_writer(message) == sdk_writer(message)
        times = 50 if size > 10_000 else 500
        taken: dict[str, list[float]] = {"sdk": [], "kie-mcp": []}
        for _ in range(rounds):
            taken["sdk"].append(cpu_us(sdk_writer, message, times))
            taken["kie-mcp"].append(cpu_us(kie_mcp_writer, message, times))
        (sdk_min, sdk_median), (ours_min, ours_median) = (
            (min(values), statistics.median(values)) for values in taken.values()
        )
        print(
            f"{name:14} {size / 1024:5.1f} KiB  SDK writer alone: min {sdk_min:7.2f} median {sdk_median:7.2f} us;  "
            f"kie-mcp: min {ours_min:7.2f} median {ours_median:7.2f} us ({ours_median - sdk_median:+.2f} us)"
        )


if __name__ == "__main__":
    main()
