"""The socket payloads against the README's contract: the field names listed in "The contract"
section's `{...}` are the keys server/payloads.py builds, and the keys a real job sends.

The README is parsed as a third-party client author would read it: `name` `{field, field?: ...}`;
a `?` marks a field that may be absent."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from server import payloads
from tests.helpers import collect_events, job_ended, sketch, upload

README = Path(__file__).resolve().parent.parent / "README.md"
SERVER_MESSAGES = ["model_status", "model_error", "job_plan", "job_step", "job_output", "job_done",
                   "job_cancelled", "job_error"]


def contract() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The contract")
    return text[start:text.index("\n## ", start + 1)]


def braced(text: str, start: int) -> str:
    """The balanced `{...}` that opens at text[start]."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end + 1]
    raise AssertionError(f"unbalanced braces in the README from: {text[start:start + 80]!r}")


def fields(spec: str) -> dict[str, tuple[bool, str | None]]:
    """`{a, b?: x, c: {d, e}}` -> {name: (optional, the nested `{...}` or None)}."""
    parts, depth, current = [], 0, ""
    for char in spec[1:-1]:
        depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    result = {}
    for part in (p.strip() for p in parts):
        match = re.match(r"(\w+)(\?)?\s*(?::\s*(\{.*\}))?", part, re.S)
        assert match, f"cannot read the field {part!r} of {spec!r}"
        result[match[1]] = (bool(match[2]), match[3])
    return result


def server_message(name: str) -> tuple[dict, str]:
    """(fields, the text of its bullet) for a server -> client message."""
    text = contract()
    found = re.search(rf"`{name}`\s*`\{{", text)
    assert found, f"the README's contract lists no `{name}` `{{...}}`"
    spec = braced(text, found.end() - 1)
    bullet_end = text.find("\n  - ", found.end())
    return fields(spec), text[found.start():bullet_end]


def documented(name: str) -> tuple[set, set]:
    """(required fields, all fields) of a server message, as the README documents them."""
    spec, _ = server_message(name)
    every = {k: optional for k, (optional, _) in spec.items()}
    return {k for k, optional in every.items() if not optional}, set(every)


def ack(event: str) -> dict:
    """The fields of a client -> server event's acknowledgement (besides `{error}`)."""
    text = contract()
    start = text.index(f"Client → server `{event}`")
    bullet = text[start:text.index("\n- ", start)]
    found = re.search(r"(?:→|acknowledged with)\s*`\{", bullet)
    assert found, f"the README gives no ack for {event}"
    return fields(braced(bullet, found.end() - 1))


# -- the builders -----------------------------------------------------------------------------------

OUTPUT = dict(name="000001.png", url="/outputs/000001.png", seed=7, elapsed_s=1.5, metadata={"seed": 7})
PREVIEW = payloads.plan_preview("taesd", 128, 128, payloads.plan_preview("patch", 128, 128))


def built(name: str) -> tuple[dict, dict]:
    """(the payload with no optional field, the payload with every one) from the builder."""
    output = payloads.saved_output(**OUTPUT)
    with_dir = payloads.saved_output(**OUTPUT, intermediates_dir="outputs/intermediates/000001")
    sheet = payloads.saved_file("000002.png", "/outputs/000002.png")
    step = dict(job_id="job-1", index=0, step=3, steps_total=10, timestep=700, kind="x_t", item=0, width=16,
                height=16, mime="image/jpeg", image=b"jpeg", step_ended_at=1.0)
    cases = {
        "model_status": [payloads.model_status("loading", 0.5, "loading", "a", None)],
        "model_error": [payloads.model_error("b", "no such file", "a")],
        "job_plan": [payloads.job_plan("job-1", "img2img", 10, 3, 7, [700], [1.0, 0.0], 7, 0, 1, 0.7, PREVIEW)],
        "job_step": [payloads.job_step(**step), payloads.job_step(**step, x0=(128, 128, b"jpeg"))],
        "job_output": [payloads.job_output("job-1", output, 0, 1), payloads.job_output("job-1", with_dir, 0, 1)],
        "job_done": [payloads.job_done("job-1", [output], 2.0), payloads.job_done("job-1", [output], 2.0, sheet)],
        "job_cancelled": [payloads.job_cancelled("job-1")],
        "job_error": [payloads.job_error("job-1", "Generation failed: out of memory")],
    }
    return cases[name][0], cases[name][-1]


@pytest.mark.parametrize("name", SERVER_MESSAGES)
def test_each_builder_makes_the_fields_the_readme_lists(name):
    required, every = documented(name)
    fewest, most = built(name)
    assert set(fewest) == required
    assert set(most) == every


def test_nested_fields_match_the_readme():
    plan, _ = server_message("job_plan")
    preview = fields(plan["preview"][1])
    assert set(PREVIEW) == set(preview)
    assert set(PREVIEW["strip"]) == set(fields(preview["strip"][1]))
    assert set(payloads.plan_preview("off", None, None)) == {k for k, (opt, _) in preview.items() if not opt}
    done, _ = server_message("job_done")
    assert set(payloads.saved_file("x.png", "/outputs/x.png")) == set(fields(done["contact_sheet"][1]))


@pytest.mark.parametrize("event, payload", [
    ("generate", payloads.job_accepted("job-1")),
    ("cancel", payloads.cancelled()),
    ("select_model", payloads.model_selected("a.safetensors", "Stable Diffusion 1.x", {"cfg_scale": 7}, 512)),
    ("promote", payloads.promoted(0, 0, 128, 128, b"png")),
])
def test_each_ack_has_the_fields_the_readme_lists(event, payload):
    assert set(payload) == set(ack(event))


def test_refusals_are_one_error_field():
    assert payloads.error("The model is still loading.") == {"error": "The model is still loading."}


# -- what a real job sends ---------------------------------------------------------------------------


def test_a_real_job_sends_what_the_readme_lists(socket_client, client):
    """A sweep with saved intermediates and both preview pictures: every optional field has a reason
    to appear. Each message has the README's required fields and no others; together they show all."""
    init = upload(client, sketch(seed=2))
    sio = socket_client()
    accepted = sio.emit("generate", {"prompt": "fire", "init_image": init["id"], "steps": 4, "seed": 5,
                                     "strengths": [0.5, 1.0], "save_intermediates": "preview",
                                     "preview_kind": "both"}, callback=True)
    assert set(accepted) == set(ack("generate"))
    events = collect_events(sio, job_ended(accepted["job_id"]))
    seen: dict[str, set] = {}
    for name, payload in events:
        required, every = documented(name)
        assert required <= set(payload) <= every, (name, sorted(payload))
        seen.setdefault(name, set()).update(payload)
    assert set(seen) == {"model_status", "job_plan", "job_step", "job_output", "job_done"}
    for name, keys in seen.items():
        assert keys == documented(name)[1], name

    promoted = sio.emit("promote", {"job_id": accepted["job_id"], "index": 0}, callback=True)
    assert set(promoted) == set(ack("promote"))

    second = sio.emit("generate", {"prompt": "fire", "steps": 50, "seed": 6}, callback=True)
    assert set(sio.emit("cancel", {"job_id": second["job_id"]}, callback=True)) == set(ack("cancel"))
    ended = collect_events(sio, job_ended(second["job_id"]))[-1]
    assert ended[0] == "job_cancelled" and set(ended[1]) == documented("job_cancelled")[1]
