"""The safety guard: a pure check of one action against the live observation, before anything is executed.

A wrong action has real effects (the paper names safety as the first limitation of LAMs), so the agent blocks a
small set of actions whose effects reach beyond the document being edited, unless a policy explicitly allows them:

- close_app: closing the document window or quitting the office (Close, Close Window, Exit, Quit; Alt+F4,
  Ctrl+F4, Ctrl+Q, Ctrl+W). A dialog's own "Close" button only closes the dialog and stays allowed.
- macros: running or editing code: macros (Macros, Run Macro, Basic IDE, Organize Macros, ...; Alt+F11) and the
  Extension Manager.
- write_outside_output: saving anywhere but the output folder, through `save_as` or through a file dialog (typing
  a path into its file-name field, or pressing its Save button while that field points outside).

Paths are resolved (symlinks and '..' included) before they are compared, so "out/../../etc/x.docx" and a symlink
out of the folder are both caught. A path the guard cannot resolve to a folder is blocked, with the reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from lamforge.env.grounding import ground
from lamforge.schema import Action, Control, Observation, check_key_combo, parse_keys

RULES = ("close_app", "macros", "write_outside_output")


class GuardVerdict(BaseModel):
    allowed: bool
    reason: str = ""
    rule: str | None = None  # which rule blocked it: one of RULES or "blocked_names"; None when allowed


@dataclass
class GuardPolicy:
    output_dir: str | Path | None = None
    """The only folder the agent may write documents into; None means it may write nowhere."""
    allow: frozenset[str] = field(default_factory=frozenset)
    """Rules explicitly switched off, from RULES (e.g. {"write_outside_output"} for a trusted batch job)."""
    blocked_names: tuple[str, ...] = ()
    """Extra control names to block (matched like the built-in ones: case, mnemonics and trailing dots ignored)."""

    def __post_init__(self):
        self.allow = frozenset(self.allow)
        unknown = self.allow - set(RULES)
        if unknown:
            raise ValueError(f"unknown guard rule(s) {sorted(unknown)}; known: {', '.join(RULES)}")


# Control names, normalised by _norm_name. Matched whole, so "Close Preview" or "Closed caption" stay allowed.
CLOSE_NAMES = {"close", "close window", "close document", "exit", "exit libreoffice", "quit", "quit libreoffice"}
MACRO_NAMES = {
    "macros", "macro", "run macro", "run", "edit macros", "organize macros", "basic", "basic ide", "basic macros",
    "record macro", "macro security", "beanshell", "javascript", "python", "libreoffice basic", "organize dialogs",
    "extension manager",  # installs extensions: code, like a macro
}
# The macro words above that are also ordinary words ("Run", "Python") only count inside the macro dialogs.
MACRO_CONTEXT_ONLY = {"run", "python", "javascript", "beanshell", "basic"}
MACRO_WINDOW = re.compile(r"macro|basic|beanshell|javascript|python", re.I)

CLOSE_KEYS = {("alt", "f4"), ("ctrl", "f4"), ("ctrl", "q"), ("ctrl", "w"), ("ctrl+shift", "w")}
MACRO_KEYS = {("alt", "f11"), ("alt+shift", "f11")}

FILE_DIALOG = re.compile(r"\b(save|export|save as|save a copy|export as)\b", re.I)
FILE_NAME_FIELD = re.compile(r"^(file ?name|name|file|path|location)\b", re.I)
FOLDER_FIELD = re.compile(r"^(folder|current folder|location|look in|save in|path|directory)\b", re.I)
CONFIRM_BUTTON = re.compile(r"^(save|export|ok)$", re.I)
TEXT_TYPES = ("edit", "text", "combo box", "entry", "spin")


def _norm_name(name: str) -> str:
    """'E~xit', 'Run Macro…', ' Close Window... ' -> 'exit', 'run macro', 'close window'."""
    name = name.replace("~", "").replace("…", "...").strip().lower()
    return " ".join(name.rstrip(".: ").split())


def _combo_key(combo: str) -> tuple[str, str] | None:
    """'Ctrl+Shift+W' -> ('ctrl+shift', 'w'); None for a combo schema validation would reject anyway."""
    try:
        names = check_key_combo(combo)
    except ValueError:
        return None
    return "+".join(sorted(n.lower() for n in names[:-1])), names[-1].lower()


def resolve_path(path: str, base: str | Path | None = None) -> Path:
    """The absolute real path: '~' expanded, relative paths taken from base (or the working directory, as the
    environment does), '..' and symlinks resolved (also for a file that does not exist yet)."""
    p = Path(os.path.expanduser(path.strip().strip('"')))
    if not p.is_absolute():
        p = Path(base or os.getcwd()) / p
    return p.resolve()


def path_inside(path: str, folder: str | Path | None, base: str | Path | None = None) -> tuple[bool, str]:
    if folder is None:
        return False, "no output folder is configured, so the agent may not write files"
    target, root = resolve_path(path, base), Path(folder).expanduser().resolve()
    if target == root or root in target.parents:
        return True, f"{target} is inside the output folder"
    return False, f"{path!r} resolves to {target}, outside the output folder {root}"


def _targets(action: Action, obs: Observation) -> list[Control]:
    """The live control the action will act on, found exactly as the environment grounds it."""
    grounding = ground(action, obs)
    control = obs.control(grounding.label) if grounding.label else None
    return [control] if control is not None else []


def _is_file_dialog(obs: Observation) -> bool:
    return obs.window == "dialog" and bool(FILE_DIALOG.search(obs.window_name or obs.title or ""))


def _dialog_folder(obs: Observation) -> str | None:
    for control in obs.controls:
        if FOLDER_FIELD.match(_norm_name(control.name)) and control.value and os.path.isabs(os.path.expanduser(control.value)):
            return control.value
    return None


def _file_name_field(control: Control) -> bool:
    return any(t in control.type.lower() for t in TEXT_TYPES) and bool(FILE_NAME_FIELD.match(_norm_name(control.name)))


def _check_dialog_path(text: str, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    text = text.strip()
    if not text:
        return GuardVerdict(allowed=True)
    expanded = os.path.expanduser(text)
    folder = _dialog_folder(obs)
    if not os.path.isabs(expanded) and folder is None:
        return GuardVerdict(allowed=False, rule="write_outside_output",
                            reason=f"file dialog: cannot tell which folder {text!r} is in; give a full path inside "
                                   f"the output folder")
    inside, why = path_inside(expanded, policy.output_dir, base=folder)
    if inside:
        return GuardVerdict(allowed=True)
    return GuardVerdict(allowed=False, rule="write_outside_output", reason=f"file dialog: {why}")


def _typed_text(keys: str) -> str:
    return "".join(value for kind, value in parse_keys(keys) if kind == "text")


def check(action: Action, obs: Observation | dict, policy: GuardPolicy | None = None) -> GuardVerdict:
    """Allow or block one action in the current observation; the reason says which rule and why."""
    policy = policy or GuardPolicy()
    obs = Observation.model_validate(obs) if isinstance(obs, dict) else obs
    verdicts = [
        _check_controls(action, obs, policy),
        _check_keys(action),
        _check_writes(action, obs, policy),
    ]
    for verdict in verdicts:
        if not verdict.allowed and verdict.rule not in policy.allow:
            return verdict
    return GuardVerdict(allowed=True)


def _presses_focused(action: Action) -> bool:
    """Whether keyboard_input activates the focused control (Enter or Space on a button presses it)."""
    for kind, value in parse_keys(action.args.get("keys", "")):
        if kind == "key" and (_combo_key(value) or ("", ""))[1] in ("return", "space"):
            return True
        if kind == "text" and " " in value:
            return True
    return False


def _check_controls(action: Action, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    if action.function in ("click_input", "set_edit_text"):
        # Both the name the model asked for and the control it will really hit: either one is enough to block.
        names = [c.name for c in _targets(action, obs)]
        if action.control_name:
            names.append(action.control_name)
    elif action.function == "keyboard_input" and _presses_focused(action):
        names = [c.name for c in obs.controls if "focused" in c.states]
    else:
        return GuardVerdict(allowed=True)
    extra = {_norm_name(n) for n in policy.blocked_names}
    in_macro_window = obs.window == "dialog" and bool(MACRO_WINDOW.search(obs.window_name or ""))
    for raw in names:
        name = _norm_name(raw)
        if name in CLOSE_NAMES and not (obs.window == "dialog" and name == "close"):
            return GuardVerdict(allowed=False, rule="close_app", reason=f"{raw!r} would close the document or the office")
        if name in MACRO_NAMES and (name not in MACRO_CONTEXT_ONLY or in_macro_window):
            return GuardVerdict(allowed=False, rule="macros", reason=f"{raw!r} runs or edits macros")
        if name in extra:
            return GuardVerdict(allowed=False, rule="blocked_names", reason=f"{raw!r} is on the policy's blocked list")
    return GuardVerdict(allowed=True)


def _check_keys(action: Action) -> GuardVerdict:
    if action.function != "keyboard_input":
        return GuardVerdict(allowed=True)
    for kind, value in parse_keys(action.args.get("keys", "")):
        if kind != "key":
            continue
        combo = _combo_key(value)
        if combo in CLOSE_KEYS:
            return GuardVerdict(allowed=False, rule="close_app", reason=f"the shortcut {{{value}}} closes the window or the office")
        if combo in MACRO_KEYS:
            return GuardVerdict(allowed=False, rule="macros", reason=f"the shortcut {{{value}}} opens the macro tools")
    return GuardVerdict(allowed=True)


def _check_writes(action: Action, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    if action.function == "save_as":
        # WriterEnv saves a relative path into its output folder, so it is resolved against that folder here too.
        inside, why = path_inside(action.args["path"], policy.output_dir, base=policy.output_dir)
        if not inside:
            return GuardVerdict(allowed=False, rule="write_outside_output", reason=f"save_as: {why}")
        return GuardVerdict(allowed=True)
    if not _is_file_dialog(obs):
        return GuardVerdict(allowed=True)
    targets = _targets(action, obs)
    if action.function == "set_edit_text" and any(_file_name_field(c) for c in targets):
        return _check_dialog_path(action.args["text"], obs, policy)
    if action.function == "keyboard_input":
        focused = targets or [c for c in obs.controls if "focused" in c.states]
        if any(_file_name_field(c) for c in focused):
            return _check_dialog_path(_typed_text(action.args["keys"]), obs, policy)
    if action.function == "click_input" and any(CONFIRM_BUTTON.match(_norm_name(c.name)) for c in targets):
        field_ = next((c for c in obs.controls if _file_name_field(c)), None)
        if field_ is not None:
            return _check_dialog_path(field_.value or "", obs, policy)
    return GuardVerdict(allowed=True)
