"""The provider-neutral video input as a value (``VideoInput``), and its translation into
each dialect's native create body, following DIALECTS §3 ("Create-request mapping"), with a
``Refused`` wherever the provider cannot do what was asked. Pure: no I/O.

``relay.adapters.video_input`` reads the wire form into a ``VideoInput`` and re-exports
this module's public names; callers import from there.

- **ark** (apiyi, cubicspaces' ``/api/v3``, the sandbox): ``content[]`` holds one ``text``
  item and ``image_url``/``video_url``/``audio_url`` items with roles; options go top-level.
- **unified** (new-api ``/v1/video/generations``: naci, vastnum, cubicspaces): ``prompt`` at
  the top; media only as ``metadata.content`` items, the one place where roles and video and
  audio references survive the upstream doubao adaptor (it replaces ``images`` with
  ``metadata.content``); options as ``metadata.<name>``, which the adaptor copies into the
  Ark payload. Duration goes both as ``seconds`` (a string) and ``metadata.duration``,
  because builds differ in which one they honour.
- **seedance2ink**: flat ``aspectRatio``/``duration``/``resolution`` and one ``mediaUrls``
  list without roles. ``webhookUrl`` is left to the dialect adapter, which adds the relay's.

Model capabilities are judged on the provider's own model name (after ``models``), since
that is what the provider checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

ImageRole = Literal["first_frame", "last_frame", "reference_image"]
Ratio = Literal["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"]
Resolution = Literal["480p", "720p", "1080p"]
MediaKind = Literal["image", "video", "audio"]

MIN_DURATION: Final = 4
MAX_DURATION: Final = 15
MODEL_CHOOSES_DURATION: Final = -1
MAX_SEED: Final = 2**32 - 1
# Seedance 2.0's own ceilings. The provider pages state only "1-9 reference images";
# 3 videos and 3 audios are what third-party Seedance 2.0 references agree on.
MAX_IMAGES: Final = 9
MAX_VIDEOS: Final = 3
MAX_AUDIOS: Final = 3


@dataclass(frozen=True, slots=True)
class Refused:
    """Why an input cannot be sent: a 400 for the caller, never a provider round trip."""

    field: str
    """The offending field's path, e.g. ``input.images.1.role``."""
    message: str


@dataclass(frozen=True, slots=True)
class MediaRef:
    url: str
    role: ImageRole | None = None
    """None: the caller left the role to the provider (a bare URL string)."""


@dataclass(frozen=True, slots=True)
class VideoInput:
    """A valid neutral input. Ranges are checked by ``parse_neutral``; what a provider
    can do is checked by ``to_native``."""

    model: str
    prompt: str | None = None
    images: tuple[MediaRef, ...] = ()
    videos: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()
    duration: int | None = None
    ratio: Ratio | None = None
    resolution: Resolution | None = None
    generate_audio: bool | None = None
    seed: int | None = None
    watermark: bool | None = None
    return_last_frame: bool | None = None


def url_scheme(url: str) -> str:
    """The lower-cased scheme of a media URL (``https``, ``data``, ``asset``, …)."""
    return url.partition(":")[0].lower()


def media_paths(spec: VideoInput) -> list[tuple[str, MediaKind, str]]:
    """``(field path, kind, url)`` for every medium, images first, in the caller's order."""
    found: list[tuple[str, MediaKind, str]] = [
        (f"input.images.{i}", "image", ref.url) for i, ref in enumerate(spec.images)
    ]
    found += [(f"input.videos.{i}", "video", url) for i, url in enumerate(spec.videos)]
    found += [(f"input.audios.{i}", "audio", url) for i, url in enumerate(spec.audios)]
    return found


DIALECTS: Final = frozenset({"ark", "unified", "seedance2ink"})

_ARK = "the Ark API"
_UNIFIED = "the unified /v1/video/generations API"
_INK = "the seedance2.ink API"

_ARK_OPTIONS: Final = (
    "duration",
    "ratio",
    "resolution",
    "seed",
    "watermark",
    "generate_audio",
    "return_last_frame",
)
_METADATA_OPTIONS: Final = _ARK_OPTIONS[1:]
"""Everything but duration, which the unified body also sends as ``seconds``."""
_INK_RATIOS: Final = ("16:9", "9:16", "1:1")
_INK_MAX_MEDIA: Final = 5
_INK_PRO_DURATIONS: Final = (5, 10)
_INK_UNSUPPORTED: Final[Mapping[str, str]] = {
    "generate_audio": "has no generate_audio option, so the relay cannot promise a silent "
    "video or one with sound",
    "seed": "has no seed option, so a result cannot be pinned to a seed",
    "watermark": "has no watermark option",
    "return_last_frame": "cannot return the last frame: its results hold only the video",
}
_NO_ALIASES: Final[Mapping[str, str]] = MappingProxyType({})


def to_native(
    dialect: str, spec: VideoInput, *, models: Mapping[str, str] = _NO_ALIASES
) -> dict[str, Any] | Refused:
    """The create body for ``dialect``, or why the provider cannot do what ``spec`` asks.

    ``models`` maps neutral aliases to the provider's model names; others go verbatim.
    An unknown dialect is a bug (configuration admits only ``DIALECTS``): ``ValueError``.
    """
    model = models.get(spec.model, spec.model)
    if dialect == "ark":
        return _ark(spec, model)
    if dialect == "unified":
        return _unified(spec, model)
    if dialect == "seedance2ink":
        return _seedance2ink(spec, model)
    raise ValueError(f"no neutral-input translation for dialect {dialect!r}")


def _ark(spec: VideoInput, model: str) -> dict[str, Any] | Refused:
    media = _ark_media(spec, model, _ARK)
    if isinstance(media, Refused):
        return media
    content, frames = media
    if spec.prompt is None and not frames:
        return Refused(
            "input.prompt",
            f"{_ARK} needs a prompt for text-to-video and for "
            f"reference images, videos or audios; only a "
            f"first-frame (or first+last-frame) video can do "
            f"without one",
        )
    if spec.prompt is not None:
        content.insert(0, {"type": "text", "text": spec.prompt})
    body: dict[str, Any] = {"model": model, "content": content}
    for name in _ARK_OPTIONS:
        value = getattr(spec, name)
        if value is not None:
            body[name] = value
    return body


def _unified(spec: VideoInput, model: str) -> dict[str, Any] | Refused:
    if spec.prompt is None:
        return Refused(
            "input.prompt",
            f"{_UNIFIED} needs a prompt (the gateway answers 'prompt is required' without one)",
        )
    for path, _, url in media_paths(spec):
        if url_scheme(url) == "data":
            return Refused(
                path,
                f"{_UNIFIED} cannot take data: URLs (gateways accept no "
                f"base64 media); upload the file and send its https:// "
                f"URL, or an approved asset:// id",
            )
    media = _ark_media(spec, model, _UNIFIED)
    if isinstance(media, Refused):
        return media
    content, _ = media
    metadata: dict[str, Any] = {}
    if content:
        metadata["content"] = content
    body: dict[str, Any] = {"model": model, "prompt": spec.prompt}
    if spec.duration is not None:
        metadata["duration"] = spec.duration
        # new-api refuses a negative ``seconds`` ("seconds must be between 1 and …") but
        # its doubao adaptor copies ``metadata.duration`` into the Ark payload untouched,
        # so -1 goes there only (a build that checks metadata too refuses it itself).
        if spec.duration != MODEL_CHOOSES_DURATION:
            body["seconds"] = str(spec.duration)
    for name in _METADATA_OPTIONS:
        value = getattr(spec, name)
        if value is not None:
            metadata[name] = value
    if metadata:
        body["metadata"] = metadata
    return body


def _ark_media(
    spec: VideoInput, model: str, api: str
) -> tuple[list[dict[str, Any]], bool] | Refused:
    """Ark ``content`` media items, and whether the video starts from a first frame.

    Checks what Ark checks (apiyi's "Generation modes"): the three image modes exclude
    each other, the model's resolution and the duration range.
    """
    roles = _ark_roles(spec, api)
    if isinstance(roles, Refused):
        return roles
    refused = (
        _ark_mode_problem(spec, roles, api)
        or _resolution_problem(spec, model)
        or _range_problem(spec, api)
    )
    if refused is not None:
        return refused
    content: list[dict[str, Any]] = []
    for ref, role in zip(spec.images, roles, strict=True):
        item: dict[str, Any] = {"type": "image_url", "image_url": {"url": ref.url}}
        if role is not None:
            item["role"] = role
        content.append(item)
    content += [
        {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}
        for url in spec.videos
    ]
    content += [
        {"type": "audio_url", "audio_url": {"url": url}, "role": "reference_audio"}
        for url in spec.audios
    ]
    frames = bool(roles) and roles[0] != "reference_image"
    return content, frames


def _ark_roles(spec: VideoInput, api: str) -> list[ImageRole | None] | Refused:
    """Every image's role, bare ones inferred.

    A lone bare image with no other media keeps no role: Ark takes it as the first frame.
    Several bare images, or bare images next to videos or audios, can only be references.
    A bare image among first/last frames is ambiguous and refused.
    """
    images = spec.images
    if all(ref.role is None for ref in images):
        if len(images) == 1 and not (spec.videos or spec.audios):
            return [None]
        return ["reference_image"] * len(images)
    frames = any(ref.role not in (None, "reference_image") for ref in images)
    roles: list[ImageRole | None] = []
    for i, ref in enumerate(images):
        if ref.role is not None:
            roles.append(ref.role)
        elif frames:
            return Refused(
                f"input.images.{i}",
                f"this image has no role while others are "
                f"first or last frames, so {api} cannot tell "
                f"what it is for; give it first_frame or "
                f"last_frame, or make every image a "
                f"reference_image",
            )
        else:
            roles.append("reference_image")
    return roles


def _ark_mode_problem(spec: VideoInput, roles: list[ImageRole | None], api: str) -> Refused | None:
    first = last = None
    for i, role in enumerate(roles):
        if (role == "reference_image") != (roles[0] == "reference_image"):
            return Refused(
                f"input.images.{i}.role",
                f"{api} cannot mix first/last-frame images with reference images: "
                f"first frame, first+last frame and reference images are separate "
                f"modes; use one kind of role",
            )
        if role == "first_frame":
            if first is not None:
                return Refused(
                    f"input.images.{i}.role",
                    f"{api} takes one first_frame image; images.{first} is one",
                )
            first = i
        elif role == "last_frame":
            if last is not None:
                return Refused(
                    f"input.images.{i}.role",
                    f"{api} takes one last_frame image; images.{last} is one",
                )
            last = i
    if last is not None and first is None:
        return Refused(
            f"input.images.{last}.role",
            f"a last_frame needs a first_frame: {api} makes a video from the "
            f"first frame to the last; add a first_frame image, or send this one "
            f"as a reference_image",
        )
    references = roles.count("reference_image")
    if references > MAX_IMAGES:
        return Refused(
            "input.images", f"{api} takes 1 to {MAX_IMAGES} reference images, not {references}"
        )
    if roles and roles[0] != "reference_image" and (spec.videos or spec.audios):
        return Refused(
            "input.videos" if spec.videos else "input.audios",
            f"{api} cannot combine first/last-frame images with reference videos "
            f"or audios; give the images the reference_image role to use them "
            f"all as references",
        )
    return _audio_alone(spec, api)


def _audio_alone(spec: VideoInput, api: str) -> Refused | None:
    if spec.audios and not (spec.images or spec.videos):
        return Refused(
            "input.audios",
            f"{api} needs at least one image or video with "
            f"reference audio: Seedance cannot make a video from "
            f"audio alone",
        )
    return None


def _resolution_problem(spec: VideoInput, model: str) -> Refused | None:
    if spec.resolution == "1080p" and "fast" in model.lower():
        return Refused(
            "input.resolution",
            f"model {model} cannot make 1080p video (fast "
            f"models stop at 720p); ask for 720p or 480p, "
            f"or use the standard model",
        )
    return None


def _range_problem(spec: VideoInput, api: str) -> Refused | None:
    # parse_neutral checks these too; a VideoInput built in code has not been through it.
    duration = spec.duration
    if (
        duration is not None
        and duration != MODEL_CHOOSES_DURATION
        and not MIN_DURATION <= duration <= MAX_DURATION
    ):
        return Refused(
            "input.duration",
            f"{api} takes {MIN_DURATION} to {MAX_DURATION} "
            f"seconds, or -1 to let the model choose, "
            f"not {duration}",
        )
    if spec.seed is not None and not -1 <= spec.seed <= MAX_SEED:
        return Refused("input.seed", f"{api} takes a seed from -1 to {MAX_SEED}")
    return None


def _seedance2ink(spec: VideoInput, model: str) -> dict[str, Any] | Refused:
    if spec.prompt is None:
        return Refused("input.prompt", f"{_INK} needs a prompt")
    for name, why in _INK_UNSUPPORTED.items():
        if getattr(spec, name) is not None:
            return Refused(
                f"input.{name}",
                f"{_INK} {why}; leave {name} out (Ark-based and unified providers support it)",
            )
    media = _ink_media(spec)
    if isinstance(media, Refused):
        return media
    refused = _ink_ratio_problem(spec) or _ink_duration_problem(spec, model)
    if refused is not None:
        return refused
    body: dict[str, Any] = {"model": model, "prompt": spec.prompt}
    if media:
        body["mediaUrls"] = media
    if spec.ratio is not None:
        body["aspectRatio"] = spec.ratio
    if spec.duration is not None:
        body["duration"] = spec.duration
    if spec.resolution is not None:
        body["resolution"] = spec.resolution
    return body


def _ink_media(spec: VideoInput) -> list[str] | Refused:
    paths = media_paths(spec)
    for path, _, url in paths:
        scheme = url_scheme(url)
        if scheme == "http":
            return Refused(path, f"{_INK} takes only public https:// URLs, not http://")
        if scheme == "data":
            return Refused(
                path,
                f"{_INK} cannot take data: URLs; upload the file and send its public https:// URL",
            )
        if scheme == "asset":
            return Refused(
                path,
                f"{_INK} does not know asset:// ids (only Ark-based "
                f"providers do); send a public https:// URL",
            )
    if len(paths) > _INK_MAX_MEDIA:
        field = paths[_INK_MAX_MEDIA][0].rsplit(".", 1)[0]
        return Refused(
            field,
            f"{_INK} takes 1 to {_INK_MAX_MEDIA} media in all (images, "
            f"videos and audios together), not {len(paths)}",
        )
    roles = [ref.role for ref in spec.images]
    if "last_frame" in roles:
        return Refused(
            f"input.images.{roles.index('last_frame')}.role",
            f"{_INK} cannot pin a last frame: its mediaUrls carry no roles and it "
            f"infers the mode from how many media of which type it gets; drop "
            f"the last_frame image or send it as a reference_image",
        )
    for i, ref in enumerate(spec.images):
        if ref.role == "first_frame" and len(paths) > 1:
            return Refused(
                f"input.images.{i}.role",
                f"{_INK} takes an image as the first frame only when it is the "
                f"only medium: with several it uses them all as references; send "
                f"the image alone, or as a reference_image",
            )
    refused = _audio_alone(spec, _INK)
    if refused is not None:
        return refused
    return [url for _, _, url in paths]


def _ink_ratio_problem(spec: VideoInput) -> Refused | None:
    if spec.ratio is None or spec.ratio in _INK_RATIOS:
        return None
    hint = "; leave ratio out to use its default" if spec.ratio == "adaptive" else ""
    return Refused(
        "input.ratio",
        f"{_INK} supports ratio {', '.join(_INK_RATIOS[:-1])} or "
        f"{_INK_RATIOS[-1]}, not {spec.ratio}{hint}",
    )


def _ink_duration_problem(spec: VideoInput, model: str) -> Refused | None:
    duration = spec.duration
    if duration is None:
        return None
    if "seedance-1.5" in model.lower():
        if duration not in _INK_PRO_DURATIONS:
            return Refused(
                "input.duration", f"model {model} makes 5- or 10-second videos only, not {duration}"
            )
        return None
    if duration == MODEL_CHOOSES_DURATION:
        return Refused(
            "input.duration",
            f"{_INK} cannot let the model choose the duration; "
            f"give {MIN_DURATION} to {MAX_DURATION} seconds",
        )
    if not MIN_DURATION <= duration <= MAX_DURATION:
        return Refused(
            "input.duration",
            f"{_INK} takes {MIN_DURATION} to {MAX_DURATION} seconds, not {duration}",
        )
    return None
