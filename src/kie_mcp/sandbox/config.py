"""Simulator settings. Every knob a test or demo may want to flip, changeable at run time via ``/__sim/config``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SANDBOX_API_KEY = "sandbox-key"
DEFAULT_ACCOUNT = "default"


class SimConfig(BaseModel):
    """How the fake KIE behaves. Defaults follow KIE's documented (or observed) behaviour.

    Times are virtual seconds (see ``Simulator.now``), except the rate limits' windows (``create_window_seconds``
    and the per-second limits), which are real seconds as KIE's are (``Simulator.rate_clock``). Limits of 0 or less
    switch a limit off, so a test that polls many times in a row is not throttled by accident.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    speed: float = Field(1.0, ge=0, description="virtual seconds per real second; 0 freezes the clock")
    starting_balance: float = 5000.0
    strict_http: bool = False
    message_key: bool = False
    old_upload_shape: bool = False
    visibility_lag_polls: int = Field(0, ge=0)
    refund_on_fail: bool = True
    create_limit: int = 20
    create_window_seconds: float = Field(10.0, gt=0)
    poll_limit_per_second: int = 10
    # KIE's model-catalogue lookups (models, schema, price, success-rate) share 1 request/second per account.
    catalog_limit_per_second: int = 1
    max_running_tasks: int = 100
    require_user_agent: bool = True
    mint_unknown_urls: bool = False
    result_url_ttl_seconds: float = 86400.0
    download_url_ttl_seconds: float = 1200.0
    expired_link_page: Literal["none", "json", "text", "xml", "html"] = Field(
        "none",
        description="what a result link past its time (result_url_ttl_seconds; a download-url link's "
        "download_url_ttl_seconds) answers: 'none' HTTP 403 with a line of text, as KIE's file host has been seen to; "
        "'json', 'text', 'xml' or 'html' HTTP 200 with an error message of that type in place of the file, as object "
        "stores and their front ends often answer an expired signed link",
    )
    # KIE's pages disagree: docs.kie.ai/file-upload-api/quickstart.md says uploads are "deleted after 24 hours" (seen
    # 2026-12-05, media/inputs.py), the rendered docs.kie.ai/file-upload-api/quickstart, upload-file-stream and
    # upload-file-url pages "after 3 days" (copies of unknown date, read 2026-12-06). The shorter, as kie-mcp assumes.
    upload_ttl_seconds: float = 86400.0
    unknown_price_credits: float = 50.0
    # A Market record as KIE answers it live carries neither creditsConsumed nor updateTime (none of 24 recorded
    # success records in justintanner/apicity tests/recordings/kie_2079838932, 2026-04-10..30, has either); KIE's docs
    # show updateTime, never creditsConsumed (docs.kie.ai/market/common/get-task-detail). Each is a setting, to try a
    # KIE that sends it. The simulator's Market callback carries the charge as consumeCredits either way (F-5).
    report_credits_consumed: bool = Field(False, description="True: Market records carry creditsConsumed")
    report_update_time: bool = Field(False, description="True: Market records carry updateTime, as KIE's docs show")
    echo_request: bool = Field(True, description="False: Market records carry param null, echoing no request")
    video_bytes: int = Field(256_000, ge=64)
    # Extras beyond the brief.
    record_retention_seconds: float = Field(14 * 86400.0, description="Veo record-info answers 422 after this")
    hd_blank_seconds: float = Field(
        0.0, ge=0, description="Veo 1080p answers 422 'record result data is blank' this long after it starts"
    )
    uhd_names_source: bool = Field(
        False,
        description="get-4k-video answers a new 4K request with the source clip's taskId (as KIE's documented "
        "example answer does, docs.kie.ai/veo3-api/get-veo-3-4k-video) instead of the 4K task's own",
    )
    failed_record_code: int | None = Field(
        None,
        ge=201,
        le=999,
        description="a status check of a failed task is answered with this code and its record as data, as KIE's "
        "failure callbacks are shaped ({code: 501, data: {...the task...}}): Market's recordInfo (its docs list 501 "
        "'Generation failed, check failMsg' among recordInfo's codes, docs.kie.ai/market/common/get-task-detail), "
        "Veo's and Flux Kontext's record-info (their failure callbacks use 501, 'generation task failed'). Runway, "
        "Aleph and GPT-4o Image document no 501 and answer 200 as ever. None: code 200, as KIE's example answers",
    )
    uhd_repeat: Literal["named", "source", "bare"] = Field(
        "named",
        description="how get-4k-video answers a repeat for a clip whose 4K is done (KIE's 422 'The video has been "
        "generated successfully', docs.kie.ai/veo3-api/get-veo-3-4k-video, 'Error Responses'): 'named' its data "
        "names the 4K task; 'source' it names the source clip (a documented example names the task asked about); "
        "'bare' it carries no data (a summary copy of that page shows it so)",
    )
    webhook_hmac_key: str | None = Field(None, description="sign recorded callbacks like KIE's webhookHmacKey")
    seed: int | None = Field(None, description="seed task ids for reproducible runs; None = random ids")
