"""The provider-neutral input form: sniffing, validation, and its translation into the
Ark, unified and seedance2.ink create bodies (DIALECTS §3)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.adapters.native_bodies import to_native as to_native_direct
from relay.adapters.video_input import (
    MAX_DATA_URL_CHARS,
    MAX_DATA_URLS_TOTAL_CHARS,
    NEUTRAL_KEYS,
    MediaRef,
    Refused,
    VideoInput,
    is_neutral,
    parse_neutral,
    to_native,
)

MODELS = {
    "seedance-2.0": "doubao-seedance-2-0-260128",
    "seedance-2.0-fast": "doubao-seedance-2-0-fast-260128",
}
STD = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
PROMPT = "A river flowing through an autumn forest, aerial view"
IMG1 = "https://cdn.example.com/first.png"
IMG2 = "https://cdn.example.com/last.png"
VID = "https://cdn.example.com/motion.mp4"
AUD = "https://cdn.example.com/music.mp3"
ASSET = "asset://asset-20260606-abc"
DATA_IMG = "data:image/png;base64,iVBORw0KGgo="


def text(value: str = PROMPT) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str, role: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def video(url: str = VID) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}


def audio(url: str = AUD) -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": url}, "role": "reference_audio"}


def translate(
    dialect: str, body: dict[str, Any], models: dict[str, str] | None = None
) -> dict[str, Any] | Refused:
    spec = parse_neutral(body)
    assert isinstance(spec, VideoInput), spec
    return to_native(dialect, spec, models=MODELS if models is None else models)


T2V = {"model": "seedance-2.0", "prompt": PROMPT}
FIRST = {
    "model": "seedance-2.0",
    "prompt": PROMPT,
    "images": [{"url": IMG1, "role": "first_frame"}],
}
FIRST_LAST = {
    "model": "seedance-2.0",
    "prompt": PROMPT,
    "images": [{"url": IMG1, "role": "first_frame"}, {"url": IMG2, "role": "last_frame"}],
}
REFERENCES = {
    "model": "seedance-2.0",
    "prompt": PROMPT,
    "images": [IMG1, IMG2],
    "videos": [VID],
    "audios": [{"url": AUD}],
}
OPTIONS = {
    "model": "seedance-2.0",
    "prompt": PROMPT,
    "duration": 10,
    "ratio": "9:16",
    "resolution": "1080p",
    "generate_audio": False,
    "seed": 97151,
    "watermark": True,
    "return_last_frame": True,
}
FIRST_LAST_CONTENT = [image(IMG1, "first_frame"), image(IMG2, "last_frame")]
REFERENCE_CONTENT = [
    image(IMG1, "reference_image"),
    image(IMG2, "reference_image"),
    video(),
    audio(),
]


@pytest.mark.parametrize(
    ("dialect", "body", "expected"),
    [
        # text to video
        ("ark", T2V, {"model": STD, "content": [text()]}),
        ("unified", T2V, {"model": STD, "prompt": PROMPT}),
        ("seedance2ink", T2V, {"model": STD, "prompt": PROMPT}),
        # first frame, with its role
        ("ark", FIRST, {"model": STD, "content": [text(), image(IMG1, "first_frame")]}),
        (
            "unified",
            FIRST,
            {"model": STD, "prompt": PROMPT, "metadata": {"content": [image(IMG1, "first_frame")]}},
        ),
        ("seedance2ink", FIRST, {"model": STD, "prompt": PROMPT, "mediaUrls": [IMG1]}),
        # first frame as a lone bare image: Ark infers the role, the prompt is optional
        (
            "ark",
            {"model": "seedance-2.0", "images": [IMG1]},
            {"model": STD, "content": [image(IMG1)]},
        ),
        (
            "unified",
            {"model": "seedance-2.0", "prompt": PROMPT, "images": [IMG1]},
            {"model": STD, "prompt": PROMPT, "metadata": {"content": [image(IMG1)]}},
        ),
        (
            "seedance2ink",
            {"model": "seedance-2.0", "prompt": PROMPT, "images": [IMG1]},
            {"model": STD, "prompt": PROMPT, "mediaUrls": [IMG1]},
        ),
        # first and last frame
        ("ark", FIRST_LAST, {"model": STD, "content": [text(), *FIRST_LAST_CONTENT]}),
        ("ark", {**FIRST_LAST, "prompt": None}, {"model": STD, "content": FIRST_LAST_CONTENT}),
        (
            "unified",
            FIRST_LAST,
            {"model": STD, "prompt": PROMPT, "metadata": {"content": FIRST_LAST_CONTENT}},
        ),
        # reference images (bare, so references), a video and an audio
        ("ark", REFERENCES, {"model": STD, "content": [text(), *REFERENCE_CONTENT]}),
        (
            "unified",
            REFERENCES,
            {"model": STD, "prompt": PROMPT, "metadata": {"content": REFERENCE_CONTENT}},
        ),
        (
            "seedance2ink",
            REFERENCES,
            {"model": STD, "prompt": PROMPT, "mediaUrls": [IMG1, IMG2, VID, AUD]},
        ),
        # every option
        (
            "ark",
            OPTIONS,
            {
                "model": STD,
                "content": [text()],
                "duration": 10,
                "ratio": "9:16",
                "resolution": "1080p",
                "seed": 97151,
                "watermark": True,
                "generate_audio": False,
                "return_last_frame": True,
            },
        ),
        (
            "unified",
            OPTIONS,
            {
                "model": STD,
                "prompt": PROMPT,
                "seconds": "10",
                "metadata": {
                    "duration": 10,
                    "ratio": "9:16",
                    "resolution": "1080p",
                    "seed": 97151,
                    "watermark": True,
                    "generate_audio": False,
                    "return_last_frame": True,
                },
            },
        ),
        (
            "seedance2ink",
            {
                "model": "seedance-2.0",
                "prompt": PROMPT,
                "duration": 10,
                "ratio": "9:16",
                "resolution": "1080p",
            },
            {
                "model": STD,
                "prompt": PROMPT,
                "aspectRatio": "9:16",
                "duration": 10,
                "resolution": "1080p",
            },
        ),
        # the model chooses the duration: unified sends -1 only where gateways pass it through
        (
            "ark",
            {**T2V, "duration": -1, "ratio": "adaptive"},
            {"model": STD, "content": [text()], "duration": -1, "ratio": "adaptive"},
        ),
        (
            "unified",
            {**T2V, "duration": -1},
            {"model": STD, "prompt": PROMPT, "metadata": {"duration": -1}},
        ),
        # asset ids and data URLs where Ark reads them
        (
            "ark",
            {**T2V, "images": [{"url": ASSET, "role": "reference_image"}], "videos": [ASSET]},
            {"model": STD, "content": [text(), image(ASSET, "reference_image"), video(ASSET)]},
        ),
        (
            "unified",
            {**T2V, "images": [{"url": ASSET, "role": "reference_image"}]},
            {
                "model": STD,
                "prompt": PROMPT,
                "metadata": {"content": [image(ASSET, "reference_image")]},
            },
        ),
        (
            "ark",
            {"model": "seedance-2.0", "images": [DATA_IMG]},
            {"model": STD, "content": [image(DATA_IMG)]},
        ),
        # bare images beside explicit references are references too
        (
            "ark",
            {**T2V, "images": [IMG1, {"url": IMG2, "role": "reference_image"}]},
            {
                "model": STD,
                "content": [text(), image(IMG1, "reference_image"), image(IMG2, "reference_image")],
            },
        ),
        # a lone bare image beside a video can only be a reference
        (
            "ark",
            {**T2V, "images": [IMG1], "videos": [VID]},
            {"model": STD, "content": [text(), image(IMG1, "reference_image"), video()]},
        ),
        (
            "ark",
            {**T2V, "videos": [VID], "audios": [AUD]},
            {"model": STD, "content": [text(), video(), audio()]},
        ),
        # 720p on the fast model is fine
        (
            "ark",
            {**T2V, "model": "seedance-2.0-fast", "resolution": "720p"},
            {"model": FAST, "content": [text()], "resolution": "720p"},
        ),
    ],
)
def test_translation(dialect: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert translate(dialect, body) == expected


def test_models_not_in_the_map_are_sent_verbatim() -> None:
    body = {"model": "doubao-seedance-2.0", "prompt": PROMPT, "duration": 5}
    assert translate("unified", body, models={}) == {
        "model": "doubao-seedance-2.0",
        "prompt": PROMPT,
        "seconds": "5",
        "metadata": {"duration": 5},
    }
    spec = parse_neutral({"model": "seedance-2.0", "prompt": PROMPT})
    assert isinstance(spec, VideoInput)
    assert to_native("ark", spec) == {"model": "seedance-2.0", "content": [text()]}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "seedance-2.0", "prompt": PROMPT, "duration": 5},
        {
            "model": "seedance-2.0-fast",
            "prompt": PROMPT,
            "duration": 15,
            "resolution": "480p",
            "ratio": "1:1",
        },
        {"model": "seedance-1.5-pro", "prompt": PROMPT, "duration": 10},
    ],
)
def test_ambiguous_bodies_translate_to_themselves_for_seedance2ink(body: dict[str, Any]) -> None:
    assert is_neutral(body)
    native = {("aspectRatio" if k == "ratio" else k): v for k, v in body.items()}
    assert translate("seedance2ink", body, models={}) == native


def test_to_native_is_re_exported() -> None:
    assert to_native is to_native_direct


# Create bodies copied from the provider pages in shared/providers/.
NACI = {
    "model": "sd2.0",
    "content": [{"type": "text", "text": "A Christmas bunny flying"}],
    "generate_audio": True,
    "ratio": "16:9",
    "duration": 11,
    "watermark": False,
}
APIYI = {
    "model": FAST,
    "content": [{"type": "text", "text": "Drone shot over a valley"}],
    "resolution": "720p",
    "ratio": "16:9",
    "duration": 5,
    "generate_audio": False,
}
APIYI_MINIMAL = {"model": FAST, "content": [{"type": "text", "text": "Drone shot"}]}
VASTNUM = {
    "model": STD,
    "prompt": "First-person POV",
    "images": [IMG1, IMG2],
    "videos": [VID],
    "audios": [AUD],
    "metadata": {
        "generate_audio": True,
        "resolution": "480p",
        "ratio": "4:3",
        "duration": 5,
        "watermark": False,
    },
}
CUBIC_UNIFIED = {
    "model": "doubao-seedance-2.0",
    "prompt": "A cubic city",
    "seconds": "5",
    "metadata": {
        "resolution": "1080p",
        "ratio": "16:9",
        "watermark": False,
        "generate_audio": True,
    },
}
CUBIC_UNIFIED_CONTENT = {
    "model": "doubao-seedance-2.0",
    "prompt": "Use image 1",
    "seconds": "5",
    "metadata": {
        "resolution": "720p",
        "ratio": "1:1",
        "camera_fixed": True,
        "watermark": False,
        "content": [image(ASSET, "reference_image")],
    },
}
CUBIC_ARK = {
    "model": "doubao-seedance-2.0",
    "content": [text("Use image 1"), {**image(ASSET, "reference_image"), "duration": 5}],
    "ratio": "16:9",
    "duration": 5,
    "generate_audio": True,
}
CUBIC_ARK_CAMERA = {
    "model": "doubao-seedance-2.0",
    "content": [text("Use image 1")],
    "duration": 5,
    "ratio": "1:1",
    "camera_fixed": True,
    "watermark": False,
}
INK = {
    "model": "seedance-2.0",
    "prompt": "A river",
    "aspectRatio": "16:9",
    "duration": 5,
    "resolution": "720p",
    "webhookUrl": "https://your-app.com/webhooks/seedance",
    "metadata": {"projectId": "proj_1001", "sceneId": "scene_08"},
}
INK_NO_WEBHOOK = {"model": "seedance-2.0", "prompt": "A river", "aspectRatio": "16:9"}


@pytest.mark.parametrize(
    "body",
    [
        NACI,
        APIYI,
        APIYI_MINIMAL,
        VASTNUM,
        CUBIC_UNIFIED,
        CUBIC_UNIFIED_CONTENT,
        CUBIC_ARK,
        CUBIC_ARK_CAMERA,
        INK,
        INK_NO_WEBHOOK,
        {"model": STD, "prompt": "x", "image": IMG1},
        {"model": STD, "prompt": "x", "input_reference": IMG1},
        {"model": STD, "prompt": "x", "mediaUrls": [IMG1]},
        {"model": STD, "content": [text()], "callback_url": "https://example.com/hook"},
        {"model": STD, "content": [text()], "frames": 121},
    ],
)
def test_native_bodies_are_sniffed_as_native(body: dict[str, Any]) -> None:
    assert not is_neutral(body)


@pytest.mark.parametrize(
    "body",
    [
        T2V,
        FIRST,
        FIRST_LAST,
        REFERENCES,
        OPTIONS,
        {"model": "seedance-2.0", "images": [IMG1]},
        {"model": "seedance-2.0", "prompt": PROMPT, "duration": 5},
        # no key is foreign, so the neutral parser gives the clear refusal
        {},
        {"prompt": PROMPT},
        # a neutral-only shape next to a native key: neutral, so the key is named in a 400
        {
            "model": "seedance-2.0",
            "prompt": PROMPT,
            "images": [{"url": IMG1, "role": "first_frame"}],
            "metadata": {"x": 1},
        },
        {"model": "seedance-2.0", "prompt": PROMPT, "videos": [{"url": VID}], "seconds": "5"},
    ],
)
def test_neutral_bodies_are_sniffed_as_neutral(body: dict[str, Any]) -> None:
    assert is_neutral(body)


def test_neutral_keys() -> None:
    assert (
        frozenset(
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
        == NEUTRAL_KEYS
    )


def test_mixed_body_names_the_native_key() -> None:
    body = {
        "model": "seedance-2.0",
        "prompt": PROMPT,
        "images": [{"url": IMG1, "role": "first_frame"}],
        "metadata": {"x": 1},
    }
    refused = parse_neutral(body)
    assert isinstance(refused, Refused)
    assert refused.field == "input.metadata"
    assert refused.message.startswith("'metadata' is not part of the neutral input form")
    assert "send its native create body instead" in refused.message


def test_parse_builds_the_value() -> None:
    body = {
        **OPTIONS,
        "images": [IMG1, {"url": IMG2, "role": "reference_image"}, {"url": ASSET}],
        "videos": [VID, {"url": ASSET}],
        "audios": [{"url": AUD}],
    }
    assert parse_neutral(body) == VideoInput(
        model="seedance-2.0",
        prompt=PROMPT,
        images=(MediaRef(IMG1), MediaRef(IMG2, "reference_image"), MediaRef(ASSET)),
        videos=(VID, ASSET),
        audios=(AUD,),
        duration=10,
        ratio="9:16",
        resolution="1080p",
        generate_audio=False,
        seed=97151,
        watermark=True,
        return_last_frame=True,
    )


def test_nulls_and_empty_lists_mean_not_given() -> None:
    body: dict[str, object] = {
        "model": "m",
        "prompt": None,
        "images": [],
        "videos": None,
        "seed": None,
    }
    assert parse_neutral(body) == VideoInput(model="m")


LONG_URL = "https://cdn.example.com/" + "a" * 2048
BIG_DATA = "data:image/png;base64," + "A" * MAX_DATA_URL_CHARS
PART_DATA = "data:image/png;base64," + "A" * (MAX_DATA_URLS_TOTAL_CHARS // 3)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        # unknown keys and wrong types
        ({**T2V, "camera_fixed": True}, "input.camera_fixed", "not part of the neutral input"),
        ({"prompt": PROMPT}, "input.model", "is required"),
        ({"model": 5}, "input.model", "must be a string"),
        ({"model": " "}, "input.model", "non-empty model name"),
        ({"model": ""}, "input.model", "non-empty model name"),
        ({**T2V, "prompt": 5}, "input.prompt", "must be a string"),
        ({**T2V, "prompt": "   "}, "input.prompt", "must not be blank"),
        ({**T2V, "prompt": "x" * 8001}, "input.prompt", "longer than 8000"),
        ({**T2V, "duration": "5"}, "input.duration", "must be a whole number"),
        ({**T2V, "duration": 5.0}, "input.duration", "must be a whole number"),
        ({**T2V, "duration": True}, "input.duration", "must be a whole number"),
        ({**T2V, "duration": 3}, "input.duration", "from 4 to 15, or -1"),
        ({**T2V, "duration": 16}, "input.duration", "got 16"),
        ({**T2V, "seed": 2**32}, "input.seed", "from -1 (random) to 4294967295"),
        ({**T2V, "seed": -2}, "input.seed", "from -1 (random)"),
        ({**T2V, "watermark": 1}, "input.watermark", "must be true or false"),
        ({**T2V, "generate_audio": "false"}, "input.generate_audio", "must be true or false"),
        (
            {**T2V, "ratio": "2:1"},
            "input.ratio",
            "must be 16:9, 4:3, 1:1, 3:4, 9:16, 21:9 or adaptive, not '2:1'",
        ),
        ({**T2V, "resolution": "4k"}, "input.resolution", "must be 480p, 720p or 1080p"),
        ({**T2V, "images": IMG1}, "input.images", "must be a list"),
        ({**T2V, "images": [5]}, "input.images.0", "must be a URL string or an object"),
        (
            {**T2V, "images": [IMG1, {"url": IMG2, "role": "middle_frame"}]},
            "input.images.1.role",
            "must be first_frame, last_frame or reference_image, not 'middle_frame'",
        ),
        ({**T2V, "images": [{"role": "first_frame"}]}, "input.images.0.url", "is required"),
        (
            {**T2V, "images": [{"url": IMG1, "weight": 2}]},
            "input.images.0.weight",
            "an image object takes only url and role",
        ),
        (
            {**T2V, "videos": [{"url": VID, "role": "reference_video"}]},
            "input.videos.0.role",
            "a video object takes only url",
        ),
        ({**T2V, "audios": [7]}, "input.audios.0", "must be a URL string or an object"),
        # URLs
        (
            {**T2V, "images": ["ftp://cdn.example.com/a.png"]},
            "input.images.0",
            "must be an http(s):// URL, a data: URL or an asset:// id",
        ),
        ({**T2V, "images": ["cdn.example.com/a.png"]}, "input.images.0", "must be an http(s)"),
        ({**T2V, "images": ["https:///a.png"]}, "input.images.0", "with a host"),
        (
            {**T2V, "images": ["https://cdn.example.com/a b.png"]},
            "input.images.0",
            "must not contain spaces",
        ),
        (
            {**T2V, "images": [{"url": "https://cdn.example.com:99999/a.png"}]},
            "input.images.0.url",
            "is not a valid URL",
        ),
        ({**T2V, "images": [LONG_URL]}, "input.images.0", "longer than 2048"),
        ({**T2V, "images": ["asset://"]}, "input.images.0", "must be asset://<asset id>"),
        (
            {**T2V, "images": ["data:image/png,notbase64"]},
            "input.images.0",
            "must be a base64 data URL",
        ),
        ({**T2V, "videos": [DATA_IMG]}, "input.videos.0", "data:image/… URL in the videos list"),
        ({**T2V, "images": [BIG_DATA]}, "input.images.0", "the limit is 2097152"),
        (
            {**T2V, "images": [PART_DATA] * 3, "audios": ["data:audio/mp3;base64,AAAA"]},
            "input.images.2",
            "add up to more than 4194304",
        ),
        # counts
        (
            {**T2V, "images": [IMG1] * 10},
            "input.images",
            "holds 10 images; Seedance 2.0 takes at most 9",
        ),
        ({**T2V, "videos": [VID] * 4}, "input.videos", "at most 3"),
        ({**T2V, "audios": [AUD] * 4}, "input.audios", "at most 3"),
    ],
)
def test_parse_refusals(body: dict[str, Any], field: str, fragment: str) -> None:
    refused = parse_neutral(body)
    assert isinstance(refused, Refused), refused
    assert refused.field == field
    assert fragment in refused.message


@pytest.mark.parametrize("key", ["object", "bare"])
def test_keys_named_like_pydantic_tags_are_still_foreign(key: str) -> None:
    refused = parse_neutral({**T2V, key: 1})
    assert isinstance(refused, Refused)
    assert refused.field == f"input.{key}"
    assert refused.message.startswith(f"{key!r} is not part of the neutral input form")


@pytest.mark.parametrize(
    ("dialect", "body", "field", "fragment"),
    [
        # 1080p on a fast model, judged on the provider's model name
        (
            "ark",
            {**T2V, "model": "seedance-2.0-fast", "resolution": "1080p"},
            "input.resolution",
            f"model {FAST} cannot make 1080p video (fast models stop at 720p)",
        ),
        (
            "unified",
            {**T2V, "model": "seedance-2.0-fast", "resolution": "1080p"},
            "input.resolution",
            f"model {FAST} cannot make 1080p video",
        ),
        (
            "ark",
            {**T2V, "model": "my-Fast-alias", "resolution": "1080p"},
            "input.resolution",
            "my-Fast-alias cannot make 1080p",
        ),
        # prompts
        (
            "ark",
            {"model": "seedance-2.0"},
            "input.prompt",
            "the Ark API needs a prompt for text-to-video",
        ),
        (
            "ark",
            {"model": "seedance-2.0", "images": [IMG1, IMG2]},
            "input.prompt",
            "reference images, videos or audios",
        ),
        ("ark", {"model": "seedance-2.0", "videos": [VID]}, "input.prompt", "needs a prompt"),
        (
            "unified",
            {"model": "seedance-2.0", "images": [IMG1]},
            "input.prompt",
            "'prompt is required'",
        ),
        (
            "seedance2ink",
            {"model": "seedance-2.0"},
            "input.prompt",
            "the seedance2.ink API needs a prompt",
        ),
        # image modes
        (
            "ark",
            {**T2V, "images": [{"url": IMG2, "role": "last_frame"}]},
            "input.images.0.role",
            "a last_frame needs a first_frame",
        ),
        (
            "unified",
            {**T2V, "images": [{"url": IMG2, "role": "last_frame"}]},
            "input.images.0.role",
            "a last_frame needs a first_frame",
        ),
        (
            "ark",
            {
                **T2V,
                "images": [
                    {"url": IMG1, "role": "first_frame"},
                    {"url": IMG2, "role": "reference_image"},
                ],
            },
            "input.images.1.role",
            "cannot mix first/last-frame images with reference images",
        ),
        (
            "unified",
            {
                **T2V,
                "images": [
                    {"url": IMG1, "role": "reference_image"},
                    {"url": IMG2, "role": "last_frame"},
                ],
            },
            "input.images.1.role",
            "cannot mix",
        ),
        (
            "ark",
            {
                **T2V,
                "images": [
                    {"url": IMG1, "role": "first_frame"},
                    {"url": IMG2, "role": "first_frame"},
                ],
            },
            "input.images.1.role",
            "takes one first_frame image; images.0 is one",
        ),
        (
            "ark",
            {
                **T2V,
                "images": [
                    {"url": IMG1, "role": "first_frame"},
                    {"url": IMG2, "role": "last_frame"},
                    {"url": IMG2, "role": "last_frame"},
                ],
            },
            "input.images.2.role",
            "takes one last_frame image; images.1 is one",
        ),
        (
            "ark",
            {**T2V, "images": [{"url": IMG1, "role": "first_frame"}, IMG2]},
            "input.images.1",
            "has no role while others are first or last frames",
        ),
        (
            "ark",
            {**FIRST, "videos": [VID]},
            "input.videos",
            "cannot combine first/last-frame images with reference videos or audios",
        ),
        ("unified", {**FIRST_LAST, "audios": [AUD]}, "input.audios", "cannot combine"),
        # audio alone
        (
            "ark",
            {**T2V, "audios": [AUD]},
            "input.audios",
            "needs at least one image or video with reference audio",
        ),
        ("unified", {**T2V, "audios": [AUD]}, "input.audios", "at least one image or video"),
        ("seedance2ink", {**T2V, "audios": [AUD]}, "input.audios", "at least one image or video"),
        # URL schemes per dialect
        ("unified", {**T2V, "images": [DATA_IMG]}, "input.images.0", "cannot take data: URLs"),
        (
            "seedance2ink",
            {**T2V, "images": ["http://cdn.example.com/a.png"]},
            "input.images.0",
            "takes only public https:// URLs, not http://",
        ),
        ("seedance2ink", {**T2V, "images": [DATA_IMG]}, "input.images.0", "cannot take data: URLs"),
        (
            "seedance2ink",
            {**T2V, "images": [IMG1], "videos": [ASSET]},
            "input.videos.0",
            "does not know asset:// ids",
        ),
        # seedance2.ink: roles, counts, ratio, duration, options it lacks
        ("seedance2ink", FIRST_LAST, "input.images.1.role", "cannot pin a last frame"),
        (
            "seedance2ink",
            {**FIRST, "videos": [VID]},
            "input.images.0.role",
            "as the first frame only when it is the only medium",
        ),
        (
            "seedance2ink",
            {**T2V, "images": [IMG1, IMG2, IMG1], "videos": [VID, VID], "audios": [AUD]},
            "input.audios",
            "takes 1 to 5 media in all (images, videos and audios together), not 6",
        ),
        (
            "seedance2ink",
            {**T2V, "ratio": "21:9"},
            "input.ratio",
            "the seedance2.ink API supports ratio 16:9, 9:16 or 1:1, not 21:9",
        ),
        ("seedance2ink", {**T2V, "ratio": "4:3"}, "input.ratio", "not 4:3"),
        (
            "seedance2ink",
            {**T2V, "ratio": "adaptive"},
            "input.ratio",
            "not adaptive; leave ratio out to use its default",
        ),
        (
            "seedance2ink",
            {**T2V, "duration": -1},
            "input.duration",
            "cannot let the model choose the duration",
        ),
        (
            "seedance2ink",
            {**T2V, "model": "seedance-1.5-pro", "duration": 8},
            "input.duration",
            "model seedance-1.5-pro makes 5- or 10-second videos only, not 8",
        ),
        (
            "seedance2ink",
            {**T2V, "seed": 42},
            "input.seed",
            "the seedance2.ink API has no seed option",
        ),
        ("seedance2ink", {**T2V, "seed": -1}, "input.seed", "has no seed option"),
        ("seedance2ink", {**T2V, "watermark": False}, "input.watermark", "has no watermark option"),
        (
            "seedance2ink",
            {**T2V, "generate_audio": True},
            "input.generate_audio",
            "has no generate_audio option",
        ),
        (
            "seedance2ink",
            {**T2V, "return_last_frame": True},
            "input.return_last_frame",
            "cannot return the last frame",
        ),
    ],
)
def test_translation_refusals(
    dialect: str, body: dict[str, Any], field: str, fragment: str
) -> None:
    refused = translate(dialect, body)
    assert isinstance(refused, Refused), refused
    assert refused.field == field
    assert fragment in refused.message


def test_seedance2ink_ratio_message_is_exact() -> None:
    assert translate("seedance2ink", {**T2V, "ratio": "21:9"}) == Refused(
        "input.ratio", "the seedance2.ink API supports ratio 16:9, 9:16 or 1:1, not 21:9"
    )


@pytest.mark.parametrize(
    ("dialect", "spec", "field", "fragment"),
    [
        # values built in code skip parse_neutral; to_native still holds the provider's limits
        (
            "ark",
            VideoInput("m", PROMPT, images=tuple(MediaRef(IMG1) for _ in range(10))),
            "input.images",
            "takes 1 to 9 reference images, not 10",
        ),
        (
            "ark",
            VideoInput("m", PROMPT, duration=20),
            "input.duration",
            "takes 4 to 15 seconds, or -1 to let the model choose, not 20",
        ),
        ("unified", VideoInput("m", PROMPT, duration=2), "input.duration", "not 2"),
        (
            "seedance2ink",
            VideoInput("m", PROMPT, duration=16),
            "input.duration",
            "takes 4 to 15 seconds, not 16",
        ),
        ("ark", VideoInput("m", PROMPT, seed=2**33), "input.seed", "from -1 to 4294967295"),
    ],
)
def test_to_native_rechecks_ranges(
    dialect: str, spec: VideoInput, field: str, fragment: str
) -> None:
    refused = to_native(dialect, spec)
    assert isinstance(refused, Refused), refused
    assert refused.field == field
    assert fragment in refused.message


def test_unknown_dialect_is_a_bug() -> None:
    with pytest.raises(ValueError, match="sandbox"):
        to_native("sandbox", VideoInput("m", PROMPT))
