"""What the safety guard forbids: its rules, its policy, and how one control or one path is judged.

The guard (guard.py) resolves an action to the controls and files it would reach; this module says whether
reaching them is allowed. The rules:

- close_app: closing the document window or quitting the office (Close, Close Window, Exit, Quit, Restart in Safe
  Mode). A dialog's own "Close" button only closes the dialog and stays allowed.
- macros: running, recording or editing code: the macro menus and dialogs, every button of a macro dialog but
  Close and Cancel, anything at all in the Basic IDE, the Extension Manager, Customize (which binds macros to keys
  and events) and Tools > Options (whose Expert Configuration can lower the macro security level).
- external_programs: what sends the document or the user out of the office: e-mail, printing, the web-browser
  preview, opening a hyperlink, the help menu's web pages (online help, user guides, feedback, donations,
  updates), and the installed help itself (F1, the Help menu's LibreOffice Help, a dialog's Help button), which the
  office opens in a web browser through xdg-open.
- write_outside_output: saving anywhere but the output folder (`save_as`, or a file dialog's name field and Save
  button; a file dialog known by its title or by the controls only file dialogs have), saving on a remote server,
  and opening another document, whose Save would write over it where it lies. Under a policy that replaces no
  file, also a name that an existing file's name extends (the dialog adds the extension) and the Yes of the office's
  question before it replaces a file.
"""

from __future__ import annotations

import glob
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from lamforge.env.paths import resolve_path  # the environment's own reading of a path: they must agree
from lamforge.schema import Control, Observation

RULES = ("close_app", "macros", "external_programs", "write_outside_output")


class GuardVerdict(BaseModel):
    allowed: bool
    reason: str = ""
    rule: str | None = None
    """Which rule blocked it: one of RULES, "blocked_names", or "unjudged" (keys the guard cannot judge in this
    observation; no policy lifts it); None when allowed."""
    keys_now: str | None = None
    """keyboard_input only: the leading part of the keys that may run now, when the rest goes to a window or a
    control this observation does not show (after {Alt+F} the File menu's items, after {Tab} the focus). The caller
    runs this part, observes, and checks the rest again. None: the verdict covers the whole action."""


@dataclass
class GuardPolicy:
    output_dir: str | Path | None = None
    """The only folder the agent may write documents into; None means it may write nowhere."""
    allow: frozenset[str] = field(default_factory=frozenset)
    """Rules explicitly switched off, from RULES (e.g. {"write_outside_output"} for a trusted batch job)."""
    blocked_names: tuple[str, ...] = ()
    """Extra control names to block (matched like the built-in ones: case, mnemonics and trailing dots ignored)."""
    subfolders: bool = True
    """Whether writes may also go into folders below output_dir. `lamforge run` says no: its output folder may be
    the user's home, and the folders in it (~/.config) are not ones the user named."""
    overwrite: bool = True
    """Whether a write may replace a file that exists. `lamforge run` says no: its output folder holds the user's
    own files."""

    def __post_init__(self):
        self.allow = frozenset(self.allow)
        unknown = self.allow - set(RULES)
        if unknown:
            raise ValueError(f"unknown guard rule(s) {sorted(unknown)}; known: {', '.join(RULES)}")


def allowed() -> GuardVerdict:
    return GuardVerdict(allowed=True)


def blocked(rule: str, reason: str) -> GuardVerdict:
    return GuardVerdict(allowed=False, rule=rule, reason=reason)


# Control names, normalised by norm_name. Matched whole, so "Close Preview" or "Closed caption" stay allowed.
CLOSE_NAMES = {"close", "close window", "close document", "exit", "exit libreoffice", "quit", "quit libreoffice",
               "restart in safe mode"}
MACRO_NAMES = {
    "macros", "macro", "run macro", "run", "edit macros", "organize macros", "basic", "basic ide", "basic macros",
    "record macro", "stop recording", "macro security", "beanshell", "javascript", "python", "libreoffice basic",
    "organize dialogs", "assign macro", "extension manager",  # extensions install code, like a macro
    "customize",  # binds macros to keys, menus and events
}
# Tools > Options, as a menu entry only ("Options" is also an ordinary tab or button name in dialogs): its Expert
# Configuration sets any setting, the macro security level among them, and its Java page a class path to run.
SETTINGS_MENU_NAMES = {"options"}
# The macro words above that are also ordinary words ("Run", "Python") only count inside the macro dialogs.
MACRO_CONTEXT_ONLY = {"run", "python", "javascript", "beanshell", "basic"}
MACRO_WINDOW = re.compile(r"macro|basic|beanshell|javascript|python", re.I)
# In a macro dialog every button runs, edits or assigns code except these (and list or tree entries, which only
# select).
MACRO_WINDOW_SAFE = {"close", "cancel"}
EXTERNAL_NAMES = {
    "user guides", "get help online", "send feedback", "get involved", "donate to libreoffice",
    "check for updates", "preview in web browser", "email document", "email as pdf", "email as microsoft word",
    "email as opendocument text", "email as microsoft format", "email as opendocument format", "print",
    "print directly", "open hyperlink", "libreoffice help", "help", "read help online",
    # Found by a red-team review (2026-12-05): a browser (Tools > Language, About) or an external program.
    "more dictionaries online", "website", "credits", "release notes", "start certificate manager",
}
# Opening another document (main window and menus; an Insert Image dialog's "Open" only reads a picture).
OPEN_NAMES = {"open", "open remote", "recent documents"}
# Saving where no folder is a local path: a remote server's.
REMOTE_SAVE_NAMES = {"save remote", "save remote file"}
# Writes whose folder is picked in a folder dialog the guard cannot read ("Select Path"), or whose file a linked
# object may write back to: the template manager's Export, and an OLE object linked to its file. No task needs them.
UNREAD_WRITES = {("templates", "export"), ("templates", "export templates"), ("ole object", "link to file"),
                 # Insert > Hyperlink's New Document page creates the file it names (a third review made one
                 # outside the allowed folder in live Writer); AutoText's Path adds a folder it writes into.
                 ("hyperlink", "new document"), ("autotext", "path")}
# File > Wizards: the document converter, letter, fax and agenda wizards save files where their pages say.
WIZARD_NAMES = {"wizards", "document converter"}
# The office's question before it replaces a file ("Confirmation": No, Yes). Under a policy that replaces nothing,
# reaching it means a name got past the path checks (a name completed with an extension, a file picked from the
# list), so its Yes is the last gate. Recognised by its title, or as any message box (a dialog of a few buttons and
# no field; no task's route answers one with Yes); not Find and Replace's Replace.
OVERWRITE_QUERY = re.compile(r"confirm|overwrite|already exists", re.I)
REPLACE_ANSWERS = {"yes", "replace", "overwrite", "yes to all"}
MESSAGE_BOX_BUTTONS = 4
# The Basic IDE is a main window ("Standard - LibreOffice Basic"): a code editor with Run (F5).
# Its dialog editor is the same window. Matched at the end only: a document may be named "Basic IDE notes.odt".
CODE_WINDOW = re.compile(r"(?:^|\s-\s)LibreOffice Basic$", re.I)
BUTTON_TYPES = ("push button", "toggle button", "button dropdown", "button menu")

FILE_DIALOG = re.compile(r"\b(save|export|save as|save a copy|export as)\b", re.I)
# Controls only the office's file dialogs have, whatever their title ("Name and Path of the HTML Document", "Name
# and Path of Master Document" say neither save nor export).
FILE_DIALOG_CONTROLS = {"file type", "automatic file name extension"}
FILE_NAME_FIELD = re.compile(r"^(file ?name|name|file|path|location)\b", re.I)
FOLDER_FIELD = re.compile(r"^(folder|current folder|location|look in|save in|path|directory)\b", re.I)
CONFIRM_BUTTON = re.compile(r"^(save|export|ok)$", re.I)
TEXT_TYPES = ("edit", "text", "combo box", "entry", "spin")


def norm_name(name: str) -> str:
    """'E~xit', 'Run Macro…', ' Close Window... ' -> 'exit', 'run macro', 'close window'."""
    name = name.replace("~", "").replace("…", "...").strip().lower()
    return " ".join(name.rstrip(".: ").split())


def in_macro_window(obs: Observation) -> bool:
    """A macro dialog, or a macro menu (Tools > Macros > Organize Macros lists Basic..., Python...)."""
    return obs.window in ("dialog", "menu") and bool(MACRO_WINDOW.search(obs.window_name or ""))


def is_message_box(obs: Observation) -> bool:
    """A dialog that only asks: a few buttons, nothing to type into."""
    buttons = [c for c in obs.controls if c.type in BUTTON_TYPES]
    return (obs.window == "dialog" and 0 < len(buttons) <= MESSAGE_BOX_BUTTONS
            and not any(c.type.startswith(TEXT_TYPES) for c in obs.controls))


def in_code_window(obs: Observation) -> bool:
    """The Basic IDE or its dialog editor: windows where keys write and run code."""
    return obs.window == "main" and bool(CODE_WINDOW.search((obs.window_name or "").strip()))


def fold_mnemonic(char: str) -> str:
    """The letter whose mnemonic a typed character triggers, compared as the office compares them (its menus ignore
    width and case, its dialogs compare upper cases): 'ｍ' -> 'm', 'ſ' -> 's', 'ẙ' -> 'y', 'X' -> 'x'."""
    folded = unicodedata.normalize("NFKC", char).upper()[:1] or char
    return unicodedata.normalize("NFKD", folded)[:1].lower()


def judge_control(control: Control | str, obs: Observation, policy: GuardPolicy, double: bool = False) -> GuardVerdict:
    """Whether pressing (clicking, or activating from the keyboard) this control is allowed in this window.
    A bare name is judged as a button of that name."""
    raw, type_ = (control, "push button") if isinstance(control, str) else (control.name, control.type)
    name = norm_name(raw)
    dialog = obs.window == "dialog"
    if name in CLOSE_NAMES and not (dialog and name == "close"):
        return blocked("close_app", f"{raw!r} would close the document or the office")
    if in_macro_window(obs) and ((type_ in BUTTON_TYPES and name not in MACRO_WINDOW_SAFE) or double):
        return blocked("macros", f"{raw!r} in the {obs.window_name!r} dialog runs, edits or assigns macros")
    if name in MACRO_NAMES and (name not in MACRO_CONTEXT_ONLY or in_macro_window(obs)):
        return blocked("macros", f"{raw!r} runs or edits macros")
    if name in SETTINGS_MENU_NAMES and type_.endswith("menu item"):
        return blocked("macros", f"{raw!r} opens Tools > Options, whose Expert Configuration can lower the macro "
                                 f"security level")
    if name in EXTERNAL_NAMES:
        return blocked("external_programs", f"{raw!r} sends the document or the user outside the office (mail, "
                                            f"printer, web)")
    if name in OPEN_NAMES and not dialog:
        return blocked("write_outside_output", f"{raw!r} opens another document, which a Save would then write "
                                               f"over where it lies")
    if name in REMOTE_SAVE_NAMES:
        return blocked("write_outside_output", f"{raw!r} saves on a remote server, outside the output folder")
    if name in WIZARD_NAMES and type_.startswith("menu"):
        return blocked("write_outside_output", f"{raw!r}: the wizards save files where their own pages say")
    window = norm_name(obs.window_name or "")
    if dialog and any(w in window and name == n for w, n in UNREAD_WRITES):
        return blocked("write_outside_output", f"{raw!r} in the {obs.window_name!r} dialog writes into a folder or a "
                                               f"file the guard cannot read")
    if (dialog and not policy.overwrite and name in REPLACE_ANSWERS
            and (OVERWRITE_QUERY.search(obs.window_name or obs.title or "") or is_message_box(obs))):
        return blocked("write_outside_output", f"{raw!r} in the {obs.window_name!r} dialog may confirm replacing a "
                                               f"file, and this policy replaces none (it answers no message box with "
                                               f"{raw!r})")
    if name in {norm_name(n) for n in policy.blocked_names}:
        return blocked("blocked_names", f"{raw!r} is on the policy's blocked list")
    return allowed()


# -- paths ----------------------------------------------------------------------------------------------------


def path_inside(path: str, folder: str | Path | None, base: str | Path | None = None) -> tuple[bool, str]:
    if folder is None:
        return False, "no output folder is configured, so the agent may not write files"
    target, root = resolve_path(path, base), Path(folder).expanduser().resolve()
    # Strictly inside: a file dialog completes a name typed as the folder itself ("/tmp/out") to a sibling
    # ("/tmp/outside.docx"), and a document cannot be saved as the folder anyway.
    if root in target.parents:
        return True, f"{target} is inside the output folder"
    return False, f"{path!r} resolves to {target}, outside the output folder {root}"


def judge_write(path: str, policy: GuardPolicy, base: str | Path | None = None, what: str = "save_as") -> GuardVerdict:
    """Whether the agent may write a document to `path` (relative paths taken from `base`)."""
    inside, why = path_inside(path, policy.output_dir, base=base)
    if not inside:
        return blocked("write_outside_output", f"{what}: {why}")
    target, root = resolve_path(path, base), Path(policy.output_dir).expanduser().resolve()
    if not policy.subfolders and target.parent != root:
        return blocked("write_outside_output", f"{what}: {target} is in a folder below the output folder {root}; "
                                               f"only the output folder itself is allowed")
    if not policy.overwrite and target.exists():
        return blocked("write_outside_output", f"{what}: {target} exists, and this policy does not replace files")
    if not policy.overwrite:
        # A file dialog completes a name with the file type's extension ("report" is saved as report.docx), so a
        # name that an existing file's name extends may be that file.
        extended = sorted(p.name for p in target.parent.glob(glob.escape(target.name) + ".*"))
        if extended:
            return blocked("write_outside_output", f"{what}: {target} may be completed to {extended[0]}, which "
                                                   f"exists, and this policy does not replace files")
    return allowed()


def is_file_dialog(obs: Observation) -> bool:
    if obs.window != "dialog":
        return False
    # By its controls: a file type and a Save or Export button (Insert Image's file dialog only reads: Open).
    return (bool(FILE_DIALOG.search(obs.window_name or obs.title or ""))
            or (any(norm_name(c.name) in FILE_DIALOG_CONTROLS for c in obs.controls)
                and any(norm_name(c.name) in ("save", "export") for c in obs.controls if c.type in BUTTON_TYPES)))


def is_file_name_field(control: Control) -> bool:
    return any(t in control.type.lower() for t in TEXT_TYPES) and bool(FILE_NAME_FIELD.match(norm_name(control.name)))


def file_name_field(obs: Observation) -> Control | None:
    return next((c for c in obs.controls if is_file_name_field(c)), None) if is_file_dialog(obs) else None


def _dialog_folder(obs: Observation) -> str | None:
    for control in obs.controls:
        if (FOLDER_FIELD.match(norm_name(control.name)) and control.value
                and os.path.isabs(os.path.expanduser(control.value))):
            return control.value
    return None


def judge_dialog_path(text: str, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    """Whether a file dialog may save under the name `text` (typed into, or already in, its name field)."""
    text = text.strip()
    if not text:
        return allowed()
    expanded = os.path.expanduser(text)
    folder = _dialog_folder(obs)
    if not os.path.isabs(expanded) and folder is None:
        return blocked("write_outside_output", f"file dialog: cannot tell which folder {text!r} is in; give a full "
                                               f"path inside the output folder")
    return judge_write(expanded, policy, base=folder, what="file dialog")
