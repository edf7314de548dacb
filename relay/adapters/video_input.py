"""The provider-neutral ("unified") video input form, and how the relay tells it from a
provider's native create body.

``POST /v1/tasks`` takes ``input``: either the provider's own create body, sent as is, or
this one form, which ``to_native`` (``relay.adapters.native_bodies``, re-exported here)
translates into each dialect (DIALECTS §3, "Create-request mapping")::

    {"model": "seedance-2.0",                      # required; aliases mapped per provider
     "prompt": "a fox runs through snow",          # required by most modes and dialects
     "images": ["https://…/a.png",                 # bare URL: the provider infers the role
                {"url": "https://…/b.png", "role": "first_frame"}],
     "videos": ["https://…/v.mp4"], "audios": [{"url": "https://…/a.mp3"}],
     "duration": 5, "ratio": "16:9", "resolution": "720p", "generate_audio": false,
     "seed": 42, "watermark": false, "return_last_frame": true}

Roles are ``first_frame``, ``last_frame`` and ``reference_image``; videos and audios are
always references. Options are sent only when given: the relay invents no defaults.

Media URLs are ``http(s)://`` (at most ``MAX_HTTP_URL_CHARS``), ``data:<type>/<subtype>;
base64,…`` whose type matches the list (Ark only; at most ``MAX_DATA_URL_CHARS`` each and
``MAX_DATA_URLS_TOTAL_CHARS`` together, because the input is stored with the task and a
data URL is the file itself; the API's body limit usually bites first) or ``asset://<id>``
(Ark-based providers only). Which dialect takes which is decided in ``to_native``.

Sniffing (``is_neutral``), for when the caller does not say which form it sent: a body is
neutral when every key is one of ``NEUTRAL_KEYS``, or when it carries a neutral-only
shape (an ``images``/``videos``/``audios`` item that is an object rather than a URL
string). Every native-only marker we know is a key outside ``NEUTRAL_KEYS`` (``content``,
``metadata``, ``seconds``, ``image``, ``input_reference``, ``aspectRatio``, ``mediaUrls``,
``webhookUrl``, ``callback_url``, ``camera_fixed``, ``frames``, …), so "does not look
native" is the same test as "every key is neutral". Consequences:

- a body that is valid both ways, such as ``{"model", "prompt", "duration"}``, is treated
  as neutral; that is harmless, because it translates to what the native reading would
  send (seedance2.ink: the same body; unified: ``seconds`` + ``metadata.duration``, which
  the gateway honours where a bare ``duration`` is ignored; Ark has no such native body).
  The one difference: an option the provider lacks (``seed`` at seedance2.ink) is refused
  instead of forwarded for the provider to ignore or refuse;
- a body mixing a neutral-only shape with a native key (image objects next to
  ``metadata``) is neutral, so ``parse_neutral`` names the foreign key in a clear 400
  instead of the provider choking on ``{"url", "role"}`` objects it does not understand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from relay.adapters.native_bodies import (
    DIALECTS,
    MAX_AUDIOS,
    MAX_DURATION,
    MAX_IMAGES,
    MAX_SEED,
    MAX_VIDEOS,
    MIN_DURATION,
    MODEL_CHOOSES_DURATION,
    ImageRole,
    MediaKind,
    MediaRef,
    Ratio,
    Refused,
    Resolution,
    VideoInput,
    media_paths,
    to_native,
    url_scheme,
)

__all__ = [
    "DIALECTS",
    "MAX_AUDIOS",
    "MAX_DATA_URLS_TOTAL_CHARS",
    "MAX_DATA_URL_CHARS",
    "MAX_DURATION",
    "MAX_HTTP_URL_CHARS",
    "MAX_IMAGES",
    "MAX_SEED",
    "MAX_VIDEOS",
    "MIN_DURATION",
    "MODEL_CHOOSES_DURATION",
    "NEUTRAL_KEYS",
    "ImageRole",
    "MediaKind",
    "MediaRef",
    "NeutralForm",
    "Ratio",
    "Refused",
    "Resolution",
    "VideoInput",
    "is_neutral",
    "media_paths",
    "parse_neutral",
    "to_native",
    "url_scheme",
]

NEUTRAL_KEYS: Final = frozenset(
    {
        "model",
        "prompt",
        "images",
        "videos",
        "audios",
        "duration",
        "ratio",
        "resolution",
        "generate_audio",
        "seed",
        "watermark",
        "return_last_frame",
    }
)

MAX_MODEL_CHARS: Final = 200
MAX_PROMPT_CHARS: Final = 8000
"""Far above any useful prompt: a bound on what is stored with the task, not a style rule."""
MAX_HTTP_URL_CHARS: Final = 2048
MAX_ASSET_URL_CHARS: Final = 256
MAX_DATA_URL_CHARS: Final = 2 * 1024 * 1024
MAX_DATA_URLS_TOTAL_CHARS: Final = 4 * 1024 * 1024

_DATA_URL = re.compile(
    r"data:(image|video|audio)/[a-z0-9][a-z0-9.+-]*;base64,[A-Za-z0-9+/]+={0,2}",
    re.IGNORECASE,
)
_ASSET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _check_url(value: str, kind: MediaKind) -> str:
    if not value:
        raise ValueError("must not be empty")
    scheme = url_scheme(value)
    if scheme == "data":
        if len(value) > MAX_DATA_URL_CHARS:
            raise ValueError(
                f"is a data: URL of {len(value)} characters; the limit is "
                f"{MAX_DATA_URL_CHARS} (upload the file and send its URL)"
            )
        match = _DATA_URL.fullmatch(value)
        if match is None:
            raise ValueError(f"must be a base64 data URL such as data:{kind}/…;base64,…")
        if match.group(1).lower() != kind:
            raise ValueError(f"is a data:{match.group(1).lower()}/… URL in the {kind}s list")
        return value
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError("must not contain spaces or control characters")
    if scheme == "asset":
        asset_id = value[len("asset://") :] if value.lower().startswith("asset://") else ""
        if len(value) > MAX_ASSET_URL_CHARS or not _ASSET_ID.fullmatch(asset_id):
            raise ValueError(
                f"must be asset://<asset id> (letters, digits, '.', '_', ':' "
                f"or '-', at most {MAX_ASSET_URL_CHARS} characters)"
            )
        return value
    if scheme in ("http", "https"):
        if len(value) > MAX_HTTP_URL_CHARS:
            raise ValueError(f"is longer than {MAX_HTTP_URL_CHARS} characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("must be an absolute URL with a host")
        return value
    raise ValueError("must be an http(s):// URL, a data: URL or an asset:// id")


def _image_url(value: str) -> str:
    return _check_url(value, "image")


def _video_url(value: str) -> str:
    return _check_url(value, "video")


def _audio_url(value: str) -> str:
    return _check_url(value, "audio")


ImageUrl = Annotated[str, AfterValidator(_image_url)]
VideoUrl = Annotated[str, AfterValidator(_video_url)]
AudioUrl = Annotated[str, AfterValidator(_audio_url)]


class _Strict(BaseModel):
    # strict: "5" is not a duration and 1 is not a boolean; providers would refuse them too.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _ImageObject(_Strict):
    url: ImageUrl
    role: ImageRole | None = None


class _VideoObject(_Strict):
    url: VideoUrl


class _AudioObject(_Strict):
    url: AudioUrl


def _item_shape(value: Any) -> str | None:
    if isinstance(value, str):
        return "bare"
    return "object" if isinstance(value, dict) else None


_TAGS = ("bare", "object")


def _one_shape(what: str) -> Discriminator:
    # A discriminator rather than a plain union: pydantic then reports the one branch the
    # value was meant for, not a failure per branch.
    return Discriminator(
        _item_shape,
        custom_error_type="media_item",
        custom_error_message=f"must be a URL string or {what}",
    )


ImageItem = Annotated[
    Annotated[ImageUrl, Tag("bare")] | Annotated[_ImageObject, Tag("object")],
    _one_shape('an object {"url": …, "role": …}'),
]
VideoItem = Annotated[
    Annotated[VideoUrl, Tag("bare")] | Annotated[_VideoObject, Tag("object")],
    _one_shape('an object {"url": …}'),
]
AudioItem = Annotated[
    Annotated[AudioUrl, Tag("bare")] | Annotated[_AudioObject, Tag("object")],
    _one_shape('an object {"url": …}'),
]


def _at_most(limit: int, noun: str) -> Any:
    def check(items: list[Any] | None) -> list[Any] | None:
        if items is not None and len(items) > limit:
            raise ValueError(f"holds {len(items)} {noun}s; Seedance 2.0 takes at most {limit}")
        return items

    return AfterValidator(check)


class NeutralForm(_Strict):
    """The wire shape of the neutral form, as pydantic checks it."""

    model: str
    prompt: str | None = None
    images: Annotated[list[ImageItem] | None, _at_most(MAX_IMAGES, "image")] = None
    videos: Annotated[list[VideoItem] | None, _at_most(MAX_VIDEOS, "video")] = None
    audios: Annotated[list[AudioItem] | None, _at_most(MAX_AUDIOS, "audio")] = None
    duration: int | None = None
    ratio: Ratio | None = None
    resolution: Resolution | None = None
    generate_audio: bool | None = None
    seed: int | None = None
    watermark: bool | None = None
    return_last_frame: bool | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value or _SPACE_OR_CONTROL.search(value):
            raise ValueError("must be a non-empty model name without spaces")
        if len(value) > MAX_MODEL_CHARS:
            raise ValueError(f"is longer than {MAX_MODEL_CHARS} characters")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.strip():
                raise ValueError("must not be blank (leave it out instead)")
            if len(value) > MAX_PROMPT_CHARS:
                raise ValueError(f"is longer than {MAX_PROMPT_CHARS} characters")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int | None) -> int | None:
        if (
            value is not None
            and value != MODEL_CHOOSES_DURATION
            and not MIN_DURATION <= value <= MAX_DURATION
        ):
            raise ValueError(
                f"must be whole seconds from {MIN_DURATION} to {MAX_DURATION}, "
                f"or -1 to let the model choose; got {value}"
            )
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not -1 <= value <= MAX_SEED:
            raise ValueError(f"must be from -1 (random) to {MAX_SEED}; got {value}")
        return value


def is_neutral(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` is (meant as) the neutral form; see the module docstring."""
    if all(key in NEUTRAL_KEYS for key in body):
        return True
    return any(
        isinstance(items, list) and any(isinstance(item, Mapping) for item in items)
        for items in (body.get("images"), body.get("videos"), body.get("audios"))
    )


def parse_neutral(body: Mapping[str, Any]) -> VideoInput | Refused:
    """Check a neutral body; the first problem found is refused, naming its field."""
    try:
        form = NeutralForm.model_validate(dict(body))
    except ValidationError as exc:
        return _refusal(exc.errors(include_url=False)[0])
    spec = VideoInput(
        model=form.model,
        prompt=form.prompt,
        images=tuple(
            MediaRef(i) if isinstance(i, str) else MediaRef(i.url, i.role)
            for i in form.images or ()
        ),
        videos=_urls(form.videos),
        audios=_urls(form.audios),
        duration=form.duration,
        ratio=form.ratio,
        resolution=form.resolution,
        generate_audio=form.generate_audio,
        seed=form.seed,
        watermark=form.watermark,
        return_last_frame=form.return_last_frame,
    )
    return _data_urls_total(spec) or spec


def _urls(items: Sequence[str | _VideoObject | _AudioObject] | None) -> tuple[str, ...]:
    return tuple(item if isinstance(item, str) else item.url for item in items or ())


def _data_urls_total(spec: VideoInput) -> Refused | None:
    total = 0
    for path, _, url in media_paths(spec):
        if url_scheme(url) == "data":
            total += len(url)
            if total > MAX_DATA_URLS_TOTAL_CHARS:
                return Refused(
                    path,
                    f"the data: URLs add up to more than "
                    f"{MAX_DATA_URLS_TOTAL_CHARS} characters; upload the "
                    f"files and send their URLs",
                )
    return None


_FOREIGN_KEY_HINT = (
    "is not part of the neutral input form (it takes "
    + ", ".join(sorted(NEUTRAL_KEYS))
    + "); to use a provider's own options, send its native create body instead"
)
_OBJECT_KEYS: Final[Mapping[str, str]] = {
    "images": "an image object takes only url and role",
    "videos": "a video object takes only url (every video is a reference)",
    "audios": "an audio object takes only url (every audio is a reference)",
}
_TYPE_MESSAGES: Final[Mapping[str, str]] = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "missing": "is required",
}


def _refusal(error: ErrorDetails) -> Refused:
    loc = [str(part) for part in error["loc"]]
    if len(loc) > 2 and loc[0] in _OBJECT_KEYS and loc[2] in _TAGS:
        del loc[2]  # the discriminator's branch name, not a field the caller wrote
    path = ".".join(["input", *loc])
    kind = error["type"]
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return Refused(path, f"{loc[0]!r} {_FOREIGN_KEY_HINT}")
        return Refused(path, f"{loc[-1]!r} is not allowed here: {_OBJECT_KEYS[loc[0]]}")
    if kind == "literal_error":
        expected = str((error.get("ctx") or {}).get("expected", ""))
        return Refused(path, f"must be {expected.replace(chr(39), '')}, not {error['input']!r}")
    if kind == "value_error":
        return Refused(path, str((error.get("ctx") or {}).get("error", error["msg"])))
    message = _TYPE_MESSAGES.get(kind) or error["msg"]
    return Refused(path, message)
