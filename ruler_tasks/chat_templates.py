"""Model chat templates wrapped around a task's prompt, as RULER's scripts/data/template.py names them
(every one of RULER's at `ruler_tasks.RULER_REVISION`, strings exact, plus the alias "llama-2-chat").

A chat template is a format string with one `{task_template}` slot. RULER builds
`chat.format(task_template=task_text) + answer_prefix`; the answer prefix follows the assistant tag.
`resolve_chat_template` accepts a name from `CHAT_TEMPLATES` or a literal format string.
"""

from __future__ import annotations

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
