"""Loads the model data files once, on first use, and answers lookups by id or friendly name."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

from kie_mcp.words import plain

from .spec import DEFAULT_PROMPT_MAX_LENGTH, ModelSpec, Source


class UnknownModelError(LookupError):
    """A model id or name that the catalogue does not know, with the closest candidates."""

    def __init__(self, name: str, candidates: list[str]) -> None:
        self.name = name
        self.candidates = candidates
        hint = f" Did you mean: {', '.join(candidates)}?" if candidates else ""
        super().__init__(
            f"Unknown model {plain(name)}; nothing was sent.{hint} list_models shows every model kie-mcp knows."
        )


class WithdrawnModelError(LookupError):
    """A model KIE no longer sells (withdrawn in the data, or gone from KIE's live model list)."""

    def __init__(self, model_id: str, alternatives: list[str], why: str) -> None:
        self.model_id = model_id
        self.alternatives = alternatives
        instead = f" Use instead: {', '.join(alternatives)}." if alternatives else " list_models shows what KIE sells."
        super().__init__(f"{model_id} is no longer offered by KIE ({why}); nothing was sent.{instead}")


class AmbiguousModelError(LookupError):
    def __init__(self, name: str, candidates: list[str]) -> None:
        self.name = name
        self.candidates = candidates
        super().__init__(
            f"Model name {plain(name)} means several models; nothing was sent. Pick one of: {', '.join(candidates)}."
        )


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-./]+", " ", name.strip().lower()).strip()


class Catalog:
    """Every model kie-mcp can price and validate, keyed by KIE model id."""

    def __init__(self, models: dict[str, ModelSpec]) -> None:
        self._models = models
        self._short: dict[str, list[str]] | None = None  # ``short_names``, worked out once
        self._names: dict[str, set[str]] = {}
        for spec in models.values():
            for name in (spec.id, spec.title, *spec.aliases):
                self._names.setdefault(_normalise(name), set()).add(spec.id)
        self._tails = _id_tails(models.values())

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def offered(self) -> Iterator[ModelSpec]:
        """The models KIE still sells (every model but the withdrawn ones)."""
        return (spec for spec in self._models.values() if spec.withdrawn is None)

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def get(self, model_id: str) -> ModelSpec | None:
        return self._models.get(model_id)

    def resolve(self, name: str) -> ModelSpec:
        """Find a model KIE sells by exact id, then by the last part of its id (``nano-banana``, as in
        ``google/nano-banana``), then by friendly name; raise with candidates otherwise.

        An id's last part is matched as written (case aside), before friendly names, whose ``-`` reads as a space: so
        ``nano-banana`` is the original Nano Banana, while ``nano banana``, a name, stays the one its data names. Only
        a last part that reads as an id (``_ID_LIKE``: ``video`` and ``seedream`` are words, read as names). A last
        part several ids end in (``text-to-video``), or written exactly as another model's name, means several
        models: refused."""
        spec = self._models.get(name)
        if spec is None:
            ids = self._tails.get(name.strip().lower()) or self._names.get(_normalise(name), set())
            live = {i for i in ids if self._models[i].withdrawn is None}
            ids = live or ids
            if len(ids) > 1:
                raise AmbiguousModelError(name, sorted(ids))
            spec = self._models[next(iter(ids))] if ids else None
        if spec is not None and spec.withdrawn is not None:
            gone = spec.withdrawn
            raise WithdrawnModelError(spec.id, gone.alternatives, f"withdrawn on {gone.date}")
        if spec is not None:
            return spec
        raise UnknownModelError(name, self._closest(name))

    def short_names(self) -> dict[str, list[str]]:
        """Model id -> the short names that pick it. A family's bare name (``kling``, ``veo``, ``nano banana``)
        stands for one model of that family, the one whose ``aliases`` in the data hold it, although other models
        of the family begin with it too. Left out: names with a version number, the ids themselves, and names that
        extend a shorter one (``kling omni``).

        Worked out once per catalogue (a catalogue is never changed: a sync makes a new one): about 0.1 s a time, and
        a request refused for want of an image asks for it to name models that work from words (``validate``), as a
        workflow judging which aspect ratios its models make does dozens of times."""
        if self._short is None:
            self._short = self._work_out_short_names()
        return {model_id: list(names) for model_id, names in self._short.items()}

    def _work_out_short_names(self) -> dict[str, list[str]]:
        names = self._offered_names()
        family: dict[str, str] = {}
        for name, ids in sorted(names.items()):
            if len(ids) != 1 or re.search(r"\d", name) or self._tails.get(name, ids) != ids:
                continue  # several models' name; a name with a version; another model's id's last part
            (model_id,) = ids
            longer = {i for other, held in names.items() if other.startswith(f"{name} ") for i in held}
            if longer - {model_id} and name != _normalise(model_id):
                family[name] = model_id
        picked: dict[str, list[str]] = {}
        for name, model_id in family.items():
            if not any(name.startswith(f"{shorter} ") for shorter in family):
                picked.setdefault(model_id, []).append(name)
        return picked

    def shared_names(self) -> dict[str, list[str]]:
        """Names that several models KIE sells answer to: ``resolve`` refuses them, listing these candidates. With them,
        a name written as another model's id's last part; not the last parts several ids end in (``text-to-video``),
        which no one takes for a model's name."""
        names = self._offered_names()
        for name, ids in names.items():
            ids.update(i for i in self._tails.get(name, ()) if self._models[i].withdrawn is None)
        return {name: sorted(ids) for name, ids in sorted(names.items()) if len(ids) > 1}

    def _offered_names(self) -> dict[str, set[str]]:
        names: dict[str, set[str]] = {}
        for spec in self.offered():
            for name in (spec.id, spec.title, *spec.aliases):
                names.setdefault(_normalise(name), set()).add(spec.id)
        return names

    def _closest(self, name: str) -> list[str]:
        """Up to three models KIE sells whose names are like ``name`` (``CLOSE_ENOUGH``: a typo, never a name that
        only shares a few letters); none when no name is that close. A name nearest a withdrawn model's (an id from
        an old guide) is answered with what KIE offers instead of it, never with the withdrawn model."""
        import difflib

        wanted = _normalise(name)
        hits = difflib.get_close_matches(wanted, list(self._names), n=5, cutoff=CLOSE_ENOUGH)
        ids: list[str] = []
        for hit in hits:
            for model_id in sorted(self._names[hit]):
                spec = self._models[model_id]
                instead = [spec.id] if spec.withdrawn is None else spec.withdrawn.alternatives
                ids += [i for i in instead if i not in ids and i in self._models and self._models[i].withdrawn is None]
        return ids[:3]


# How like a known name (difflib's ratio) an unknown model name must be to be suggested: "veo3_fsat" is 0.89 like
# "veo3 fast" and "klign 3.0" 0.89 like "kling 3 0", while "nonexistent-model" was 0.55 like "wan animate move" and
# "my-video-model" 0.62 like "wan video to video", suggestions that only sent an agent astray.
CLOSE_ENOUGH = 0.7


# An id's last part that reads as an id, not a word (``nano-banana``, ``veo3_fast``; never ``video``, ``upscale`` or
# ``seedream``, which an agent may write as a word and which were never taken for the model whose id ends in them).
_ID_LIKE = re.compile(r".*[-_.0-9].*")


def _id_tails(models: Iterable[ModelSpec]) -> dict[str, set[str]]:
    """The last part of each model's id (after its last ``/``; the whole id when it has none) that reads as an id
    (``_ID_LIKE``), lowercase -> the models it stands for: those whose id ends in it, and those with a title or alias
    written exactly so."""
    specs = list(models)
    tails: dict[str, set[str]] = {}
    for spec in specs:
        if _ID_LIKE.fullmatch(tail := spec.id.rsplit("/", 1)[-1].lower()):
            tails.setdefault(tail, set()).add(spec.id)
    for spec in specs:
        for name in (spec.title, *spec.aliases):
            if (written := name.strip().lower()) in tails:
                tails[written].add(spec.id)
    return tails


def _load_file(text: str) -> dict[str, ModelSpec]:
    import tomllib  # only when the catalogue is first needed: start-up and tools/list never parse it

    raw = tomllib.loads(text)
    sources = {key: Source(**value) for key, value in raw.get("sources", {}).items()}
    models: dict[str, ModelSpec] = {}
    for model_id, body in raw.get("models", {}).items():
        fields = {name: _bounded({**value, "name": name}) for name, value in body.get("fields", {}).items()}
        spec = ModelSpec(**{**body, "id": model_id, "fields": fields, "sources": sources})
        _check_sources(spec)
        models[model_id] = spec
    return models


def _bounded(field: dict[str, Any]) -> dict[str, Any]:
    """Every prompt has a length bound: the documented one, else ``DEFAULT_PROMPT_MAX_LENGTH`` (marked as ours)."""
    if field.get("arg") == "prompt" and field.get("max_length") is None:
        return {**field, "max_length": DEFAULT_PROMPT_MAX_LENGTH, "max_length_default": True}
    return field


def _check_sources(spec: ModelSpec) -> None:
    """Every fact must name a source defined in its file: provenance is not optional."""
    keys = [spec.source, *(f.source for f in spec.fields.values()), *(r.source for r in spec.rules)]
    for media in (f.media for f in spec.fields.values() if f.media is not None):
        keys += [media.source, *(rule.source for rule in media.lengths)]
    if spec.images:
        keys.append(spec.images.source)
    if spec.frames:
        keys.append(spec.frames.source)
    if spec.price:
        keys += [spec.price.source, *(r.up_to_source for r in spec.price.rates if r.up_to_source)]
    if spec.reserve:
        keys.append(spec.reserve.source)
    if spec.dialogue:
        keys.append(spec.dialogue.source)
    if spec.withdrawn:
        keys.append(spec.withdrawn.source)
    if spec.followup:
        keys += [spec.followup.source, *(r.source for r in spec.followup.refuse)]
        if spec.followup.adds_seconds is not None:  # a length is a fact too
            keys.append(spec.followup.adds_seconds_source or "(adds_seconds without adds_seconds_source)")
    if spec.unified:
        keys.append(spec.unified.source)
    missing = sorted({k for k in keys if k not in spec.sources})
    if missing:
        raise ValueError(f"model {spec.id!r} cites undefined sources: {missing}")


_LOADING = threading.Lock()


def load_catalog() -> Catalog:
    """Every model of the ``*.toml`` files shipped in ``kie_mcp/catalog/data``: parsed on the first call, once per
    process (concurrent first calls wait for the one parse), the same ``Catalog`` afterwards."""
    with _LOADING:
        return _parse_catalog()


def loaded() -> bool:
    """Whether this process has parsed the catalogue yet (start-up and ``tools/list`` do not)."""
    return _parse_catalog.cache_info().currsize > 0


@functools.cache
def _parse_catalog() -> Catalog:
    models: dict[str, ModelSpec] = {}
    data_dir = resources.files("kie_mcp.catalog") / "data"
    for entry in sorted(data_dir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            for model_id, spec in _load_file(entry.read_text(encoding="utf-8")).items():
                if model_id in models:
                    raise ValueError(f"model {model_id!r} is defined twice (second time in {entry.name})")
                models[model_id] = spec
    return Catalog(models)
