"""Workflows as MCP prompts: multi-step recipes a user picks, with every approval point spelled out.

A prompt is chosen by the user, so unlike resources it may walk the agent through steps. Every recipe keeps
the two promises: the cost is shown and approved before each spend, and a still is approved before any
video is made from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from mcp import MCPError
from mcp.server import MCPServer
from mcp.types import INVALID_PARAMS
from pydantic import Field

from kie_mcp.words import plain

ANGLES = (1, 24)  # character_sheet: angles after the hero
BEATS = (1, 20)  # animated_ad: storyboard beats
# Prompt arguments arrive as text: counts are taken as text and checked here (``_count``), and say their range.
Angles = Annotated[
    str, Field(description=f"angles after the hero portrait: a whole number from {ANGLES[0]} to {ANGLES[1]}")
]
Beats = Annotated[str, Field(description=f"storyboard beats: a whole number from {BEATS[0]} to {BEATS[1]}")]

APPROVAL = (
    "Before every generation, call estimate_cost with the exact arguments, show the user the credits and "
    "about-USD figure, and only generate after they say yes (pass the quote_id, or confirm in the dialog if the "
    "client shows one). Never resubmit a task whose result was 'unknown'; check it with check_task first."
)


def _count(name: str, value: str | int, allowed: tuple[int, int]) -> int:
    """A whole-number prompt argument (arguments arrive as text) within ``allowed``, or an error the client shows:
    the argument, what was given and the range. The SDK would say only "Error rendering prompt"."""
    low, high = allowed
    text = str(value).strip()
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None
    if number is None or not low <= number <= high:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{name} must be a whole number from {low} to {high} (got {plain(str(value))}).",
        )
    return number


def _guide(*names: str) -> str:
    files = ", ".join(f"kie://prompting/prompt-library/{n}.md" for n in names)
    return f"Read kie://prompting/guide.md and {files} first, and follow their formulas and QA checklists."


def _context() -> str:
    return (
        "Read kie://workspace/MASTER_CONTEXT.md for brand voice and model preferences, and look in references/ "
        "for usable reference images (pass them by workspace path, e.g. references/products/bottle.jpg)."
    )


def influencer_recreation(reference_image: str, scene: str, script: str = "", video_model: str = "veo3_fast") -> str:
    """Recreate a person from a reference photo as a still, get it approved, then animate it."""
    speech = f' They say: "{script}"' if script else " No dialogue."
    return "\n".join(
        [
            f"Workflow: influencer recreation. Reference photo: {reference_image}. Scene: {scene}.{speech}",
            _guide("influencer-recreation", "nano-banana", "veo-3-1"),
            _context(),
            "1. Write a Nano Banana 2 prompt that keeps the person's identity and places them in the scene. "
            f"Estimate a still with model nano-banana-2 and images=[{reference_image!r}]. {APPROVAL}",
            "2. Generate the still. Inspect it with the QA checklist (hands, face, merged objects, text). "
            "Show it to the user. APPROVAL POINT: do not make any video until the user approves this still; "
            "a fix is a new, separately approved generation.",
            f"3. With the approved still's URL as the first frame, estimate {video_model} "
            + ("with script=... (kie-mcp picks the duration) " if script else "")
            + "and describe only the motion, camera and sound in the prompt. "
            + APPROVAL,
            "4. Generate the video, follow it with check_task, and give the user the result links.",
        ]
    )


def product_showcase(product_image: str, person: str, pitch: str = "", video_model: str = "veo3_fast") -> str:
    """An AI person holds or uses the product (an approved still), then talks about it on video."""
    speech = f' Spoken pitch: "{pitch}"' if pitch else ""
    return "\n".join(
        [
            f"Workflow: product showcase. Product image: {product_image}. Person: {person}.{speech}",
            _guide("product-showcase", "nano-banana", "veo-3-1"),
            _context(),
            "1. Write a Nano Banana 2 prompt for the starting frame: the person holding or using the product, "
            f"product label readable. Estimate with images=[{product_image!r}]. {APPROVAL}",
            "2. Generate it and QA it (the product must match the reference; hands and label intact). "
            "APPROVAL POINT: the user approves the still before any video.",
            f"3. Estimate {video_model} with the approved still as the first frame"
            + (" and script= the pitch" if pitch else "")
            + f". {APPROVAL}",
            "4. Generate, follow with check_task, and present the clip.",
        ]
    )


def character_sheet(description: str, angles: Angles = "9", model: str = "nano-banana-2") -> str:
    """A consistent character: a hero portrait first, approved, then the other angles from it (angles: 1-24)."""
    angles = str(_count("angles", angles, ANGLES))
    return "\n".join(
        [
            f"Workflow: character sheet. Character: {description}. Angles after the hero: {angles}.",
            _guide("character-sheet", "character-sheet-gpt-image-2", "nano-banana"),
            _context(),
            f"1. Write the hero front portrait prompt and estimate it with {model}. {APPROVAL}",
            "2. Generate and QA the hero. APPROVAL POINT: the user approves the hero before any other angle.",
            f"3. Estimate the {angles} remaining angles with the hero URL in images (variations or one call per "
            f"angle, as the guide suggests) and show the total cost. {APPROVAL}",
            "4. Generate the angles, QA each, and suggest saving them under references/influencers/<name>/.",
        ]
    )


def ugc_video(product: str, script: str, persona: str = "", model: str = "veo3_fast") -> str:
    """A selfie-style UGC reel with a script, phone-camera look."""
    return "\n".join(
        [
            f"Workflow: UGC selfie video. Product: {product}. Persona: {persona or 'as in MASTER_CONTEXT.md'}. "
            f'Script: "{script}"',
            _guide("ugc-selfie-style", "veo-3-1", "kling-3"),
            _context(),
            f"1. Write the visual prompt in the UGC style (handheld phone, natural light, imperfections). "
            f"Estimate {model} with script= the script, 9:16. If kie-mcp says the script is too long (an error "
            "with a suggested split and longer models, or Veo's warning that speech may be cut), offer a "
            "shorter script, the split, or a model with longer takes such as kling-3.0/video (up to 15 s). "
            f"{APPROVAL}",
            "2. Generate, follow with check_task, and present the clip; offer a variation only as a new, "
            "separately approved spend.",
            "3. If the take is good but the script needs more time, extend it instead of regenerating: "
            "continue_video(task_id, operation='extend', prompt= only the next line, same style words) keeps the "
            "same person and room. For delivery, offer operation='hd' (the 1080p version) on the approved clip. "
            f"Both are spends: {APPROVAL}",
        ]
    )


def script_to_video(script: str, visual_style: str, model: str = "veo3_fast") -> str:
    """A long script becomes several clips that fit the model, generated and then joined."""
    return "\n".join(
        [
            f"Workflow: script to video. Style: {visual_style}. Model: {model}.",
            f'Script: "{script}"',
            _guide("veo-3-1", "kling-3", "seedance-2"),
            "1. Call estimate_cost with script= the whole script. If it does not fit one clip, kie-mcp answers "
            "with a split at sentence boundaries and each part's duration: use those parts. Veo instead keeps "
            "8 s and warns that speech may be cut: then split the script at sentence boundaries into parts of "
            "about 20 words or fewer.",
            "2. Write one prompt per part (same character, wardrobe and setting for continuity). Estimate each "
            f"part and show the user the TOTAL before anything is made. {APPROVAL}",
            "3. Generate the parts, follow them with check_task, and keep the task ids in order. A part that "
            "continues the previous one in the same shot can instead extend it (continue_video, "
            "operation='extend', on Veo 3.1, Runway or Grok Imagine clips), which keeps the person and setting; "
            f"each extension is its own approved spend. {APPROVAL}",
            "4. Join the clips in order with stitch_videos (chain=true brings an extended clip's whole chain) and "
            "present both the joined video and the parts.",
        ]
    )


def animated_ad(product: str, story: str, style: str = "3D-animated", beats: Beats = "6") -> str:
    """Storyboard stills for each beat, approved, then image-to-video per beat, then stitched (beats: 1-20)."""
    beats = str(_count("beats", beats, BEATS))
    library = "claymation-ad" if "clay" in style.lower() else "pixar-style-ad"
    return "\n".join(
        [
            f"Workflow: animated ad, {style}. Product: {product}. Story: {story}. Beats: {beats}.",
            _guide(library, "gpt-image-2", "seedance-2", "caption-video"),
            _context(),
            "1. Lock a cast sheet (characters, palette, product look) and a beat list with one line of "
            "narration per beat. Show it to the user.",
            f"2. Estimate the {beats} storyboard stills (gpt-image-2-text-to-image, each beat with the previous "
            f"still as a reference for consistency) and show the total. {APPROVAL}",
            "3. Generate and QA the stills. APPROVAL POINT: the user approves every still before any video.",
            f"4. Estimate image-to-video per beat (bytedance/seedance-2 with the approved still as the first "
            f"frame; prompts describe motion only) and show the total. {APPROVAL}",
            "5. Generate, follow with check_task, then join the beats in order and burn the captions "
            "(see caption-video).",
        ]
    )


WORKFLOWS: dict[str, tuple[str, Callable[..., str]]] = {
    "influencer_recreation": ("Influencer recreation: photo, still, video", influencer_recreation),
    "product_showcase": ("Product showcase: a person with your product, then video", product_showcase),
    "character_sheet": ("Character sheet: hero portrait, then angles", character_sheet),
    "ugc_video": ("UGC selfie-style video with a script", ugc_video),
    "script_to_video": ("Long script to several clips, joined", script_to_video),
    "animated_ad": ("Animated ad: storyboard stills, then a clip per beat", animated_ad),
}


def register_prompts(mcp: MCPServer) -> None:
    for name, (title, fn) in WORKFLOWS.items():
        mcp.prompt(name=name, title=title)(fn)
