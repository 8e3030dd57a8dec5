"""The one place where chat messages and a target become token ids.

Training encodes (messages, target) with `encode_example`; the agent runtime builds its prompt with
`build_prompt_ids` and lets the model continue. Both go through `build_prompt_ids`, so a trained model sees at
inference exactly the token sequence it was trained on, up to the first target token.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips: prompt tokens carry no loss


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def prompt_length(self) -> int:
        return next((i for i, label in enumerate(self.labels) if label != IGNORE_INDEX), len(self.labels))

    def __len__(self) -> int:
        return len(self.input_ids)


def _fold_system_into_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Chat templates without a system role (Mistral-7B-Instruct v0.1/v0.2) get the system text on the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return [{"role": "user", "content": system}, *rest]


def render_prompt_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The chat-templated prompt, ending where the assistant's reply begins."""
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception:  # jinja2 TemplateError: templates raise on roles they do not support
        if not messages or messages[0]["role"] != "system":
            raise
        return tokenizer.apply_chat_template(_fold_system_into_user(messages), add_generation_prompt=True, tokenize=False)


def build_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the prompt; the model's reply (the target at training time) follows directly."""
    # The template already writes any BOS token as text, so the tokenizer must not add another.
    return tokenizer(render_prompt_text(tokenizer, messages), add_special_tokens=False)["input_ids"]


def target_ids(tokenizer, target: str) -> list[int]:
    """The reply tokens: the target text then EOS, so the model learns to stop after one action or plan."""
    return tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode_example(tokenizer, messages: list[dict[str, str]], target: str) -> Encoded:
    """input_ids = prompt + target + EOS; labels are IGNORE_INDEX on the prompt, so the loss is on the target only."""
    prompt = build_prompt_ids(tokenizer, messages)
    reply = target_ids(tokenizer, target)
    return Encoded(input_ids=prompt + reply, labels=[IGNORE_INDEX] * len(prompt) + reply)
