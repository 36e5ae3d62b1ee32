"""Model chat templates wrapped around a task's prompt, as RULER's scripts/data/template.py names them
(every one of RULER's at `ruler_tasks.RULER_REVISION`, strings exact, plus the alias "llama-2-chat").

A chat template is a format string with one `{task_template}` slot. RULER builds
`chat.format(task_template=task_text) + answer_prefix`; the answer prefix follows the assistant tag.
`resolve_chat_template` accepts a name from `CHAT_TEMPLATES` or a literal format string.
`from_jinja` turns a Hugging Face checkpoint's Jinja chat template into such a format string, once, at
conversion time (rendered in jinja2's immutable sandbox around one user message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.errors import UserError

SLOT = "{task_template}"

CHAT_TEMPLATES: dict[str, str] = {
    "base": "{task_template}",
    "meta-chat": "[INST] {task_template} [/INST]",
    "llama-2-chat": "[INST] {task_template} [/INST]",
    "vicuna-chat": (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: {task_template} ASSISTANT:"
    ),
    "lwm-chat": "You are a helpful assistant. USER: {task_template} ASSISTANT: ",
    "command-r-chat": (
        "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|USER_TOKEN|>{task_template}<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    ),
    "chatglm-chat": "[gMASK]sop<|user|> \n {task_template}<|assistant|> \n ",
    "RWKV": (
        "User: hi\n\nAssistant: Hi. I am your assistant and I will provide expert full response in full "
        "details. Please feel free to ask any question and I will always answer it\n\nUser: {task_template}"
        "\n\nAssistant:"
    ),
    "Phi3": "<|user|>\n{task_template}<|end|>\n<|assistant|>\n",
    "meta-llama3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{task_template}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "jamba": "<|startoftext|><|bom|><|system|> <|eom|><|bom|><|user|> {task_template}<|eom|><|bom|><|assistant|>",
    "nemotron5-instruct": "<SPECIAL_10>System\n\n<SPECIAL_11>User\n{task_template}\n<SPECIAL_11>Assistant\n",
}


@dataclass(frozen=True)
class ChatTemplate:
    """`before + task_text + after` is the wrapped prompt; `name` is what the manifest records."""

    name: str
    before: str
    after: str

    def wrap(self, task_text: str) -> str:
        return self.before + task_text + self.after


def resolve_chat_template(spec: str) -> ChatTemplate:
    """A name from CHAT_TEMPLATES, or a format string with exactly one `{task_template}`."""
    fmt = CHAT_TEMPLATES.get(spec, spec)
    if fmt.count(SLOT) != 1:
        raise UserError(
            f"chat template {spec!r}: not a known name ({', '.join(CHAT_TEMPLATES)}) nor a format string "
            f"with exactly one {SLOT}"
        )
    before, after = fmt.split(SLOT)
    return ChatTemplate(name=spec, before=before, after=after)


USER_SENTINEL = "RATTNRULERUSERMESSAGE"  # stands for the task text while a Jinja template renders


def from_jinja(source: str, special_tokens: dict[str, str | None], where: str) -> str:
    """A Hugging Face Jinja chat template -> a format string with one `{task_template}`: the template
    rendered as transformers' apply_chat_template renders it (one user message, add_generation_prompt,
    trim_blocks and lstrip_blocks, `raise_exception`, a `tojson` filter, the special tokens as variables),
    in jinja2's ImmutableSandboxedEnvironment, so a template can neither reach Python objects nor change
    state. No `strftime_now` is given: templates that date their system prompt fall back to their own
    fixed date, which keeps prompts reproducible. A template that fails, or that does not place the
    message exactly once, is a UserError naming `where`."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    fix = f"; evaluate with --chat-template NAME or a format string holding {SLOT} instead"
    try:
        text = env.from_string(source).render(
            messages=[{"role": "user", "content": USER_SENTINEL}], add_generation_prompt=True,
            **{name: token or "" for name, token in special_tokens.items()})
    except jinja2.TemplateError as e:  # syntax errors, undefined names, sandbox refusals, raise_exception
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{where}: the chat template does not render ({type(e).__name__}: {first}){fix}") from None
    if text.count(USER_SENTINEL) != 1 or SLOT in text:
        raise UserError(f"{where}: the chat template does not place the user message exactly once{fix}")
    return text.replace(USER_SENTINEL, SLOT)
