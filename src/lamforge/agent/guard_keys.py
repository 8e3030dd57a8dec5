"""The safety guard's reading of keyboard_input: what each key would do, in the window the observation shows.

A key's effect depends on where the keyboard focus is: `x` types a letter in the document but runs Exit in an open
File menu; Enter inserts a paragraph in the text but presses a dialog's default button; Alt+R presses a dialog's Run
button. So the keys are first normalised to what the office receives (repeated and reordered modifiers, key
aliases, newlines and tabs inside typed text), then walked through a small model of the focus:

- which window the keys go to (main window, dialog, menu), and which control in it has the focus;
- what each key does there: the office's own shortcut table for Ctrl/Alt/F-key combinations (deny-listed commands
  are blocked everywhere), the mnemonics the office reports for menu entries, buttons and labelled fields
  (Alt+letter in a dialog, a bare letter in a menu or on a focused button), Enter and Space on the focused control
  or the dialog's default button, typing into a file dialog's name field;
- where the focus goes next. A key that may open a window (a menu, a dialog) or move the focus to a control the
  guard cannot name leaves the model uncertain; a later key that could act (a letter, Enter, Space) is then judged
  against every control it might reach, and in a window the guard cannot see at all it is not judged.

A key blocked only because an earlier key of the same action took the focus out of sight is not the end: the
verdict carries the judged part as `keys_now`, which the agent runs before it observes and checks the rest again.
A key blocked on the observation itself, or certainly dangerous, is blocked with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lamforge.agent.guard_rules import (BUTTON_TYPES, CONFIRM_BUTTON, TEXT_TYPES, GuardPolicy, GuardVerdict, allowed,
                                        blocked, file_name_field, fold_mnemonic, is_file_dialog, is_file_name_field,
                                        judge_control, judge_dialog_path, norm_name)
from lamforge.schema import Control, Observation, check_key_combo, parse_keys

Combo = tuple[frozenset, str]  # (modifiers among ctrl/shift/alt, key): ({"ctrl"}, "q"), (set(), "x"), (set(), "return")


def combo(text: str) -> Combo:
    """'Ctrl+Ctrl+Q', 'control+q', 'Shift+Ctrl+q' -> ({'ctrl'}, 'q'), ({'ctrl'}, 'q'), ({'ctrl', 'shift'}, 'q'):
    what the office receives. Key aliases (Esc/Escape, Enter/Return, Del/Delete) go through the schema's table."""
    names = check_key_combo(text)
    mods, key = frozenset(names[:-1]), names[-1]
    return mods, (key if len(key) == 1 and not mods else key.lower())


def show(c: Combo) -> str:
    mods, key = c
    parts = [m.capitalize() for m in ("ctrl", "alt", "shift") if m in mods]
    return "{" + "+".join(parts + [key.upper() if len(key) == 1 else key.capitalize()]) + "}"


def _c(mods: str, key: str) -> Combo:
    return frozenset(m for m in mods.split("+") if m), key


# The office's key bindings (LibreOffice 7.4's defaults, Writer and global; tests/test_guard_live.py checks them
# against the running office) of the commands the guard forbids, plus Alt+F4, which the window system handles.
# Shift is ignored when matching: Ctrl+Shift+Q (.uno:BasicBreak) is blocked with Ctrl+Q.
DENIED_SHORTCUTS: dict[Combo, tuple[str, str, str]] = {
    _c("ctrl", "q"): (".uno:Quit", "close_app", "quits LibreOffice"),
    _c("ctrl", "w"): (".uno:CloseWin", "close_app", "closes the window"),
    _c("ctrl", "f4"): (".uno:CloseDoc", "close_app", "closes the document"),
    _c("alt", "f4"): ("the window system's close", "close_app", "closes the window"),
    _c("alt", "f11"): (".uno:MacroDialog", "macros", "opens the macro dialog"),
    _c("ctrl", "*"): (".uno:ExecuteMacroField", "macros", "runs a macro field's macro"),
    _c("ctrl+alt", "e"): ("service:com.sun.star.deployment.ui.PackageManagerDialog", "macros",
                          "opens the Extension Manager"),
    _c("alt", "f12"): (".uno:OptionsTreeDialog", "macros",
                       "opens Tools > Options, whose Expert Configuration can lower the macro security level"),
    _c("ctrl", "p"): (".uno:Print", "external_programs", "prints"),
    _c("ctrl", "o"): (".uno:Open", "write_outside_output",
                      "opens another document, which a Save would then write over where it lies"),
    # The installed help is HTML that the office hands to xdg-open: a web browser (measured: F1 ran
    # `xdg-open file:///.../NewHelp0.html`). Shift+F1 (What's This?) goes with it, as Shift is ignored.
    _c("", "f1"): (".uno:HelpIndex", "external_programs", "opens the help in a web browser"),
    # Shift+F10 opens the context menu, a popup the observation never shows, so what later keys run in it could
    # not be judged (it has Open Hyperlink). F10 goes with it (Shift is ignored); the menu bar it activates is
    # observed, and clicking a menu or Alt+letter does what it does.
    _c("shift", "f10"): ("the context menu", "unjudged",
                         "opens a context menu, which the observation does not show; click a menu instead"),
}
# The commands the guard forbids: every key the office binds to one of them must be in DENIED_SHORTCUTS.
DENIED_COMMANDS = {
    ".uno:Quit", ".uno:CloseWin", ".uno:CloseDoc", ".uno:MacroDialog", ".uno:RunMacro", ".uno:BasicIDEAppear",
    ".uno:MacroOrganizer", ".uno:MacroRecorder", ".uno:BasicBreak", ".uno:ExecuteMacroField",
    "service:com.sun.star.deployment.ui.PackageManagerDialog", ".uno:Print", ".uno:PrintDefault",
    ".uno:Open", ".uno:OpenFromWriter", ".uno:OpenRemote", ".uno:SendMail", ".uno:WebHtml",
    ".uno:OpenHyperlinkOnCursor", ".uno:HelpIndex", ".uno:OptionsTreeDialog",
}

# Combinations that edit or move in the document text and open nothing (with the command the office binds them
# to, which the live test checks): the focus stays in the text. Any other combination may open a window.
DOCUMENT_SHORTCUTS: dict[Combo, str] = {
    _c("ctrl", "b"): ".uno:Bold", _c("ctrl", "i"): ".uno:Italic", _c("ctrl", "u"): ".uno:Underline",
    _c("ctrl", "d"): ".uno:UnderlineDouble", _c("ctrl+shift", "p"): ".uno:SuperScript",
    _c("ctrl+shift", "b"): ".uno:SubScript", _c("ctrl+shift", "k"): ".uno:SmallCaps",
    _c("ctrl", "e"): ".uno:CenterPara", _c("ctrl", "l"): ".uno:LeftPara", _c("ctrl", "r"): ".uno:RightPara",
    _c("ctrl", "j"): ".uno:JustifyPara", _c("ctrl", "m"): ".uno:ResetAttributes",
    _c("ctrl+shift", "x"): ".uno:RemoveDirectCharFormats", _c("ctrl", "z"): ".uno:Undo", _c("ctrl", "y"): ".uno:Redo",
    _c("ctrl+shift", "z"): ".uno:Redo", _c("ctrl", "c"): ".uno:Copy", _c("ctrl", "x"): ".uno:Cut",
    _c("ctrl", "v"): ".uno:Paste", _c("ctrl", "a"): ".uno:SelectAll", _c("ctrl", "return"): ".uno:InsertPagebreak",
    _c("shift", "return"): ".uno:InsertLinebreak", _c("ctrl+shift", "space"): ".uno:InsertNonBreakingSpace",
    _c("ctrl", "backspace"): ".uno:DelToStartOfWord", _c("ctrl", "delete"): ".uno:DelToEndOfWord",
    _c("ctrl", "home"): ".uno:GoToStartOfDoc", _c("ctrl", "end"): ".uno:GoToEndOfDoc",
    _c("ctrl", "left"): ".uno:GoToPrevWord", _c("ctrl", "right"): ".uno:GoToNextWord",
    _c("ctrl", "up"): ".uno:GoToStartOfPara", _c("ctrl", "down"): ".uno:GoToNextPara",
    _c("ctrl+shift", "home"): ".uno:StartOfDocumentSel", _c("ctrl+shift", "end"): ".uno:EndOfDocumentSel",
    _c("ctrl+shift", "left"): ".uno:WordLeftSel", _c("ctrl+shift", "right"): ".uno:WordRightSel",
    _c("ctrl+shift", "up"): ".uno:StartOfParaSel", _c("ctrl+shift", "down"): ".uno:EndOfParaSel",
    _c("shift", "f3"): ".uno:ChangeCaseRotateCase", _c("", "f12"): ".uno:DefaultNumbering",
    _c("shift", "f12"): ".uno:DefaultBullet", _c("ctrl+shift", "f12"): ".uno:RemoveBullets",
    _c("ctrl", "1"): ".uno:StyleApply?Style:string=Heading 1&FamilyName:string=ParagraphStyles",
    _c("ctrl", "2"): ".uno:StyleApply?Style:string=Heading 2&FamilyName:string=ParagraphStyles",
    _c("ctrl", "3"): ".uno:StyleApply?Style:string=Heading 3&FamilyName:string=ParagraphStyles",
    _c("ctrl", "0"): ".uno:StyleApply?Style:string=Text body&FamilyName:string=ParagraphStyles",
}
# Keys that only move the focus, the caret or a highlight: harmless wherever they land.
NAVIGATION = {"tab", "up", "down", "left", "right", "home", "end", "prior", "next"}
# Keys that edit the document text at the caret (with NAVIGATION and Escape, harmless in the text).
TEXT_EDITING = {"return", "tab", "backspace", "delete", "space", "insert", "escape"}
# Keys that edit a text field's content without leaving it.
FIELD_EDITING = {"backspace", "delete", "left", "right", "home", "end", "insert"}
LIST_TYPES = ("list item", "tree item", "table cell", "list", "tree")
MENU_TYPES = ("menu", "menu item", "check menu item", "radio menu item")


def denied_shortcut(c: Combo) -> tuple[str, str, str] | None:
    mods, key = c
    return DENIED_SHORTCUTS.get((mods - {"shift"}, key)) or DENIED_SHORTCUTS.get((mods | {"shift"}, key))


@dataclass(frozen=True)
class Unit:
    """One key as the office receives it, with its place in the keys string."""

    combo: Combo
    start: int

    @property
    def char(self) -> str | None:
        """The character a plain printable key types ('x', 'X', '/'); None for other keys."""
        mods, key = self.combo
        return key if len(key) == 1 and mods <= {"shift"} else None


# xdotool types these characters of literal text as the keys they stand for.
TEXT_KEYS = {"\n": "return", "\r": "return", "\t": "tab"}


def units(keys: str) -> list[Unit] | str:
    """The keys the office receives, in order; or why the string cannot be read safely."""
    out: list[Unit] = []
    pos = 0
    for kind, value in parse_keys(keys):
        if kind == "key":
            end = keys.index("}", pos) + 1
            try:
                out.append(Unit(combo(value), pos))
            except ValueError as exc:
                return str(exc)
            pos = end
            continue
        for offset, char in enumerate(value):
            if char in TEXT_KEYS:
                key = TEXT_KEYS[char]
            elif not char.isprintable():
                return f"the typed text holds the control character U+{ord(char):04X}, which is sent as a key"
            else:
                key = "space" if char == " " else char
            out.append(Unit((frozenset(), key), pos + offset))
        pos += len(value)
    return out


# -- the focus model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Focus:
    window: str | None
    """"main", "dialog" or "menu"; None once a key may have opened or closed a window."""
    control: Control | None = None
    """The focused control; None for the document text (main window) or when unknown."""
    known: bool = True
    """False when any control of the window may have the focus (or, in a menu, the highlight)."""
    changed: bool = False
    """Whether the uncertainty comes from a key of this action, so that observing after it would remove it."""
    caret: str | None = None
    """In the focused text field: "end" (typing appends), "all" (the whole text is selected: typing replaces it),
    None (not observed)."""


def _initial(obs: Observation) -> Focus:
    focused = [c for c in obs.controls if "focused" in c.states]
    # A closed drop-down reports its current entry as focused; a real control is what counts.
    real = [c for c in focused if not c.type.startswith(LIST_TYPES)]
    if obs.window == "menu":
        lit = [c for c in obs.controls if {"focused", "selected"} & set(c.states)]
        return Focus("menu", lit[0] if len(lit) == 1 else None, known=len(lit) == 1)
    if obs.window == "main":
        # No control focused: the focus is in the document text, which the observation shows as the canvas.
        return Focus("main", real[0] if len(real) == 1 else None, known=len(real) <= 1)
    control = real[0] if len(real) == 1 else (focused[0] if not real and len(focused) == 1 else None)
    if control is None:
        return Focus("dialog", known=False)
    # The caret's place is not observed; in an empty field typing can only append.
    return Focus("dialog", control, caret="end" if not control.value else None)


class Judge:
    """Walks the keys of one keyboard_input through the focus model, judging each."""

    def __init__(self, obs: Observation, policy: GuardPolicy):
        self.obs, self.policy = obs, policy
        self.focus = _initial(obs)
        field = file_name_field(obs)
        self.file_name: str | None = (field.value or "") if field is not None else None
        """A file dialog's name field as the keys leave it; None once the guard cannot tell its text."""

    def _uncertain(self, **changes) -> None:
        self.focus = replace(self.focus, known=False, changed=True, **changes)

    def _lift(self, verdict: GuardVerdict) -> GuardVerdict:
        return allowed() if not verdict.allowed and verdict.rule in self.policy.allow else verdict

    def _press(self, controls: list[Control], why: str) -> GuardVerdict:
        """Judge pressing these controls: the one a key reaches, or each one it may reach."""
        for control in controls:
            verdict = self._lift(judge_control(control, self.obs, self.policy))
            if verdict.allowed and is_file_dialog(self.obs) and CONFIRM_BUTTON.match(norm_name(control.name)):
                verdict = self._file_name_verdict()
            if not verdict.allowed:
                return verdict.model_copy(update={"reason": f"{why} {verdict.reason}"})
        return allowed()

    def _file_name_verdict(self) -> GuardVerdict:
        """A file dialog's Save, judged on what its name field holds then."""
        if file_name_field(self.obs) is None:
            return allowed()
        if self.file_name is None:
            return blocked("write_outside_output", "it would save under a file name the guard cannot tell after the "
                                                   "keys before it")
        return self._lift(judge_dialog_path(self.file_name, self.obs, self.policy))

    def _on_file_name(self) -> bool:
        control = self.focus.control if self.focus.known else None
        return control is not None and is_file_name_field(control) and is_file_dialog(self.obs)

    def step(self, unit: Unit) -> GuardVerdict:
        """Judge one key where the focus is and move the focus on."""
        key = show(unit.combo) if unit.char is None else repr(unit.char)
        if self.focus.window is None:
            mods, name = unit.combo
            if (name in NAVIGATION and mods <= {"shift", "ctrl"}) or (name == "escape" and not mods):
                return allowed()
            return blocked("unjudged", f"{key} would act in a window an earlier key opens or closes, which the guard "
                                       f"cannot see yet")
        return {"menu": self._in_menu, "dialog": self._in_dialog, "main": self._in_main}[self.focus.window](unit, key)

    # -- mnemonics ---------------------------------------------------------------------------------------------

    def _mnemonic(self, char: str, key: str, certain: bool = True) -> GuardVerdict:
        """A letter that activates the control whose mnemonic it is. `certain`: whether the letter surely acts as a
        mnemonic (Alt+letter, a letter in a menu or on a button) or only may (on a list, which searches with it)."""
        window = self.focus.window
        matches = [c for c in self.obs.controls if c.mnemonic == fold_mnemonic(char)]
        if window == "main":
            self._uncertain(window=None)  # the menu bar opens a menu whose entries are not observed yet
            return allowed()
        if not matches:
            if certain or any(c.type == "page tab" for c in self.obs.controls):
                # A mnemonic the observation does not list (a tab page, a label the office did not credit to its
                # field): the focus moved, or the dialog shows another page.
                self._uncertain(window=None)
            return allowed()
        fields = [c for c in matches if c.type.startswith(TEXT_TYPES)]
        presses = [c for c in matches if c not in fields]
        verdict = self._press(presses, f"{key} {'is' if certain else 'may be'} the mnemonic of a control:")
        if not verdict.allowed:
            return verdict
        if certain and len(matches) == 1 and not matches[0].type.startswith((*BUTTON_TYPES, "page tab")):
            # A check box toggles; a label's mnemonic focuses its field and selects the field's text.
            self.focus = replace(self.focus, control=matches[0], known=True, caret="all" if fields else None)
        else:
            self._uncertain(window=None)  # a button ran (the dialog may be gone), or one of several controls acted
        return allowed()

    # -- windows -----------------------------------------------------------------------------------------------

    def _in_menu(self, unit: Unit, key: str) -> GuardVerdict:
        mods, name = unit.combo
        if len(name) == 1:
            # A letter runs the entry whose mnemonic it is with any modifiers (the office matches a key's character,
            # and else its key code, whatever Alt or Ctrl is held), ignoring case and width ('ｘ' is Exit).
            if not name.isascii() and not fold_mnemonic(name).isascii():
                return blocked("unjudged", f"{key}: a letter the guard cannot match to a menu entry's mnemonic the "
                                           f"way the office does; type it in the document, not in a menu")
            entries = [c for c in self.obs.controls if c.type in MENU_TYPES]
            matches = [c for c in entries if c.mnemonic == fold_mnemonic(name)]
            verdict = self._press(matches, f"{key} runs a menu entry:")
            if matches or mods - {"shift"}:
                self._uncertain(window=None)  # a command ran or a submenu opened (or the modifier did something)
            return verdict
        if name in ("return", "space"):
            control = self.focus.control if self.focus.known else None
            entries = [control] if control is not None else [c for c in self.obs.controls if c.type in MENU_TYPES]
            why = f"{key} runs the highlighted entry {control.name!r}:" if control is not None else \
                f"{key} runs the highlighted menu entry, which the guard cannot tell; it may be"
            self._uncertain(window=None)
            return self._press(entries, why)
        if name in ("up", "down", "home", "end") and mods <= {"shift"}:
            self._uncertain(control=None)  # the highlight moved within this menu
            return allowed()
        if name == "right":
            # Opens the highlighted entry's submenu (Tools > Macros): judged as opening it, like Enter.
            control = self.focus.control if self.focus.known else None
            submenus = [control] if control is not None else [c for c in self.obs.controls if c.type == "menu"]
            self._uncertain(window=None)
            return self._press([c for c in submenus if c.type == "menu"], f"{key} opens the submenu of")
        self._uncertain(window=None)  # Left, Right, Escape, Alt+letter: a submenu, another menu or none
        return allowed()

    def _buttons(self) -> list[Control]:
        return [c for c in self.obs.controls if c.type in BUTTON_TYPES]

    def _in_dialog(self, unit: Unit, key: str) -> GuardVerdict:
        mods, name = unit.combo
        control = self.focus.control if self.focus.known else None
        in_field = control is not None and control.type.startswith(TEXT_TYPES)
        if "alt" in mods and len(name) == 1:
            # Alt+Shift+S presses Save as Alt+S does: the office matches the character, not the modifiers.
            return self._mnemonic(name, key)
        if unit.char is not None or (name == "space" and not mods and in_field):
            char = unit.char or " "
            if in_field:
                return self._type_into_field(char)
            if control is None and is_file_dialog(self.obs):
                return blocked("unjudged", f"{key}: in a file dialog typed text may go into the file name, and the "
                                           f"guard cannot tell which control has the focus; click the field first")
            if is_file_dialog(self.obs) and control is not None and control.type.startswith(LIST_TYPES):
                self.file_name = None  # a letter on the file list picks a file, whose name fills the name field
            return self._mnemonic(char, key, certain=control is not None and not control.type.startswith(LIST_TYPES))
        if name in ("return", "space"):
            # With any modifiers: Ctrl+Enter and Alt+Enter press the default button as Enter does.
            return self._activate(name, key, control)
        if in_field and (name in FIELD_EDITING and mods <= {"shift", "ctrl"}
                         or mods == {"ctrl"} and name in ("a", "c", "x", "v", "z", "y")):
            # The caret moved or text was cut, pasted or undone: the field's text is no longer known.
            self.focus = replace(self.focus, caret=None)
            if self._on_file_name():
                self.file_name = None
            return allowed()
        if name in NAVIGATION and mods <= {"shift", "ctrl"}:
            if is_file_dialog(self.obs) and name != "tab" and not (control is not None and not self._on_file_name()
                                                                   and not control.type.startswith(LIST_TYPES)):
                # The name box's drop-down, or the file list (where the focus may be), puts another name in.
                self.file_name = None
            self._uncertain(control=None)
            return allowed()
        if len(name) == 1:
            # Ctrl+letter (but a text field's own Ctrl+A/C/X/V/Z/Y above): the office may take its character for a
            # mnemonic too.
            return self._mnemonic(name, key, certain=False)
        # Escape (the dialog closes), F-keys and other combinations: what they lead to is not observed.
        self._uncertain(window=None)
        return allowed()

    def _activate(self, name: str, key: str, control: Control | None) -> GuardVerdict:
        """Enter or Space in a dialog: the focused button, or (Enter) the default button."""
        buttons = self._buttons()
        default = [c for c in buttons if "default" in c.states]
        if is_file_dialog(self.obs) and (control is None or control.type.startswith(LIST_TYPES)):
            self.file_name = None  # Enter on the file list saves under the entry's name, not the field's
        if control is not None and (control.type in BUTTON_TYPES or name == "space"):
            targets, why = [control], f"{key} presses {control.name!r}:"
        elif control is not None and default:
            targets, why = default, f"{key} presses the default button {default[0].name!r}:"
        elif control is not None:
            targets, why = buttons, f"{key} presses the default button, which the dialog does not mark; it may be"
        else:
            targets, why = buttons, f"{key} presses the focused or the default button, which the guard cannot tell; " \
                                    f"it may be"
        verdict = self._press(targets, why)
        if targets and any(c.type in BUTTON_TYPES for c in targets):
            self._uncertain(window=None)
        return verdict

    def _type_into_field(self, char: str) -> GuardVerdict:
        if self._on_file_name():
            caret = self.focus.caret
            if caret == "all":
                self.file_name = char
            elif caret == "end" and self.file_name is not None:
                self.file_name += char
            else:
                self.file_name = None  # typed at a caret the guard cannot place
        self.focus = replace(self.focus, caret="end" if self.focus.caret else None)
        return allowed()

    def _in_main(self, unit: Unit, key: str) -> GuardVerdict:
        mods, name = unit.combo
        control = self.focus.control if self.focus.known else None
        in_text = self.focus.known and (control is None or control.type.startswith(TEXT_TYPES))
        if (mods == {"alt"} and len(name) == 1) or (unit.char and control is not None and control.type in MENU_TYPES):
            return self._mnemonic(name, key)  # the menu bar (active after F10, a letter alone) opens a menu
        if control is not None and control.type in MENU_TYPES and unit.char is None:
            # The menu bar is active (F6 reaches it; the observation shows its entry focused in the main window):
            # Down, Up, Enter or Space open that menu and Left or Right move along the bar, so the keys after this
            # one are judged in the menu that opens (`{F6}`, then `{Down}x`, would run File > Exit).
            self._uncertain(window=None)
            return allowed()
        if unit.char is not None:
            return allowed()  # into the document or a toolbar field; a toolbar button ignores letters
        if name in ("return", "space") and mods <= {"shift"} and not in_text:
            targets = [control] if control is not None else self._buttons()
            why = f"{key} presses {control.name!r}:" if control is not None else \
                f"{key} presses the focused toolbar button, which the guard cannot tell; it may be"
            self._uncertain(window=None)
            return self._press(targets, why)
        if (not mods and name in TEXT_EDITING) or (mods <= {"shift", "ctrl"} and name in NAVIGATION):
            if not self.focus.known or control is not None:
                self._uncertain(control=None)  # a toolbar field or button may hand the focus on
            return allowed()
        if unit.combo in DOCUMENT_SHORTCUTS and self.focus.known and control is None:
            return allowed()
        self._uncertain(window=None)  # another command: it may open a window (Ctrl+Shift+S opens Save As)
        return allowed()


def judge_keys(keys: str, obs: Observation, policy: GuardPolicy) -> GuardVerdict:
    """Judge a keyboard_input's keys in this observation (see the module docstring)."""
    parsed = units(keys)
    if isinstance(parsed, str):
        return blocked("unjudged", f"cannot judge the keys: {parsed}")
    for unit in parsed:  # forbidden shortcuts are forbidden wherever the focus is
        denied = denied_shortcut(unit.combo)
        if denied is not None and denied[1] not in policy.allow:
            command, rule, what = denied
            return blocked(rule, f"the key {show(unit.combo)} {what} ({command})")
    judge = Judge(obs, policy)
    for i, unit in enumerate(parsed):
        before = judge.focus
        verdict = judge.step(unit)
        if verdict.allowed:
            continue
        if i and before.changed and (before.window is None or not before.known):
            # Blocked only because an earlier key of this action moved the focus out of sight: run the keys up to
            # here, observe, and judge the rest there.
            return GuardVerdict(allowed=True, keys_now=keys[:unit.start],
                                reason=f"re-check after {keys[:unit.start]!r}: {verdict.reason}")
        if verdict.rule == "unjudged":
            return verdict.model_copy(update={"reason": f"cannot judge the keys: {verdict.reason}"})
        return verdict
    return allowed()
