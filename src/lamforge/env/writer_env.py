"""WriterEnv: a gymnasium environment over a real LibreOffice Writer window.

The environment knows nothing about agents or tasks (gymnasium/BrowserGym split): it opens a document, reports
what is on screen, executes one action in the one schema, and says what happened. Success is decided by task
checkers on `doc_state()`; a task may pass `reward_fn` in reset options to get it as the terminal reward.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from lamforge.env.docstate import DocState
from lamforge.env.grounding import Grounding, ground
from lamforge.env.office import Office, OfficeError, OfficeScriptError, interaction_aborter, property_values
from lamforge.env.paths import resolve_path
from lamforge.env.reaper import forget, remove_on_exit, remove_tree
from lamforge.prompt import render_observation
from lamforge.schema import (Action, ActionParseError, Observation, Status, check_key_combo, parse_action, parse_keys,
                             xdotool_key)

SAVE_FILTERS = {".docx": "MS Word 2007 XML", ".odt": "writer8", ".pdf": "writer_pdf_Export"}
BLANK = "private:factory/swriter"
LOAD_TIMEOUT_S = 30
TYPE_DELAY_MS = 6
# Controls whose value shows the text typed into them (the observation's type names of the office's text roles).
TEXT_FIELD_TYPES = ("text", "combo box", "spin box")


# The parts a package must have for LibreOffice to open it as a text document.
ZIP_FORMATS = {".docx": ("[Content_Types].xml", "word/document.xml"), ".odt": ("content.xml",)}
MAX_XML_BYTES = 256 << 20  # a part that inflates past this is refused, not parsed (a zip bomb)


def check_document(path: Path) -> None:
    """Reject a .docx/.odt that LibreOffice would not open cleanly, before the office sees it, with a clear message.

    Why: LibreOffice answers a broken package (a bad zip, a missing part, XML that does not parse, a password) with
    a modal error, repair or password dialog inside the load call, which only the watchdog's kill ends (two 30 s
    kills, then a misleading "hung"). Reading the zip and parsing each XML part takes milliseconds.
    """
    suffix = path.suffix.lower()
    required = ZIP_FORMATS.get(suffix)
    if required is None:
        return
    try:
        with zipfile.ZipFile(path) as package:
            names = set(package.namelist())
            for member in required:
                if member not in names:
                    raise ValueError(f"{path.name} is not a valid {suffix} document: it has no {member}")
            if "META-INF/manifest.xml" in names and b"encryption-data" in package.read("META-INF/manifest.xml"):
                raise ValueError(f"{path.name} is password-protected; save a copy without a password first")
            for info in package.infolist():
                if info.filename.endswith((".xml", ".rels")):
                    _parse_xml_member(path, package, info)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path.name} is corrupt or not a {suffix} file ({exc})") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _parse_xml_member(path: Path, package: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    from lxml import etree

    if info.file_size > MAX_XML_BYTES:
        raise ValueError(f"{path.name}: its part {info.filename} inflates to {info.file_size >> 20} MiB; refusing it")
    try:
        data = package.read(info)  # checks the member's CRC too
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{path.name} is corrupt: its part {info.filename} cannot be read ({exc})") from exc
    # No entities, no network, no DTD: a document's XML is data, not instructions.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{path.name} is corrupt: its part {info.filename} is not well-formed XML "
                         f"(line {exc.lineno}: {exc.msg})") from exc


class LoadWatch:
    """While the office loads a document, end any dialog it opens and remember what the dialog said.

    Why: a package that passes check_document can still be one LibreOffice rejects (XML it does not expect, a
    wrong mimetype, a missing relationship part): it then shows a modal error inside the load call, and the load
    returns only when the dialog closes, or when the watchdog kills the office after LOAD_TIMEOUT_S, twice. Ending
    the dialog makes the load fail at once, with the office's own words for the error.
    """

    def __init__(self, office: Office, every_s: float = 0.3):
        self.office, self.every_s = office, every_s
        self.dialogs: list[dict] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "LoadWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(LOAD_TIMEOUT_S + 5)

    def _watch(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                # The call may wait while the load holds the office; past the load's own limit both are killed.
                self.dialogs += self.office.call("close_popups", timeout=LOAD_TIMEOUT_S + 5).get("dialogs", [])
            except OfficeScriptError:
                continue  # a window went while it was read; look again
            except Exception:  # noqa: BLE001  the office died or hung: the load reports that itself
                return

    def said(self) -> str:
        # A dialog's first paragraph is its message; the rest is advice for a person at the screen.
        return "".join(f"; it said {d['title']!r}: {' '.join(d['text'].split(chr(10))[0].split()) or '(no text)'}"
                       for d in self.dialogs)


class JsonSpace(gym.spaces.Space):
    """A space of plain-dict records validated by a pydantic model (observations and actions are variable-size)."""

    def __init__(self, model: type):
        super().__init__()
        self.model = model

    def contains(self, x: Any) -> bool:
        try:
            self.model.model_validate(x)
            return True
        except Exception:
            return False

    def sample(self, mask=None, probability=None):
        raise NotImplementedError("a structured UI observation or action cannot be sampled at random")


class WriterEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, max_steps: int = 30, display: str | None = None, render_mode: str | None = None,
                 settle_s: float = 0.03, writable: list[Path] | None = None):
        """`writable`: run the office sandboxed (env/sandbox.py), able to write only into these folders and the
        environment's own working folder (its copy of the document); None runs it as any program runs."""
        self.max_steps = max_steps
        self.display = display
        self.render_mode = render_mode
        self.settle_s = settle_s
        self.observation_space = JsonSpace(Observation)
        self.action_space = JsonSpace(Action)
        self.office: Office | None = None
        # The working folder lies inside a 0700 one that a sandboxed office does not see: whatever modes it sets in
        # its folders, no other user of the machine reaches them (env/sandbox.py).
        self._private = Path(tempfile.mkdtemp(prefix="lamforge-env-"))
        remove_on_exit(self._private)  # also when this process is killed before close()
        self.workdir = self._private / "work"
        self.workdir.mkdir(mode=0o700)
        self.writable = None if writable is None else [Path(p).resolve() for p in (self.workdir, *writable)]
        self.doc = None
        self.doc_path: Path | None = None
        self._steps = 0
        self.out_dir = (self.workdir / "out").resolve()
        self._obs = Observation()
        self._reward_fn: Callable[[DocState], float] | None = None

    # -- episode --------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        t0 = time.perf_counter()
        self._reward_fn = options.get("reward_fn")
        # Relative save_as paths land here; the agent's guard keeps writes inside it.
        self.out_dir = Path(options.get("out_dir") or self.workdir / "out").resolve()
        self._steps = 0
        restarted = False
        for attempt in range(2):
            try:
                self._ensure_office()
                self._open(options.get("doc"))
                self._obs = self._observe()
                break
            except OfficeError:
                if attempt:
                    raise
                restarted = True
                self._restart()
        info = {"doc": str(self.doc_path) if self.doc_path else None, "reset_ms": (time.perf_counter() - t0) * 1000,
                "office_restarted": restarted}
        return self._obs.model_dump(), info

    def step(self, action: Action | dict | str):
        self._steps += 1
        info: dict[str, Any] = {"result": "", "error": None, "grounding": None, "env_error": False}
        terminated = False
        try:
            action = parse_action(action)
        except ActionParseError as exc:
            info["error"] = f"invalid action: {exc}"
            return self._finish_step(info, terminated=False)
        info["grounding"] = ground(action, self._obs).model_dump()
        grounding = Grounding.model_validate(info["grounding"])
        try:
            if not grounding.ok:
                info["error"] = f"grounding rejected: {grounding.reason}"
            else:
                ok, message = self._execute(action, grounding)
                info["result" if ok else "error"] = message
            self._obs = self._observe()
        except OfficeScriptError as exc:
            info["error"] = f"execution error: {exc}"
            return self._finish_step(info, terminated=False)
        except OfficeError as exc:
            info["env_error"] = True
            info["error"] = f"environment error: {exc}"
            self._restart()
            self._obs = Observation()
            return self._obs.model_dump(), 0.0, True, False, info
        terminated = action.status in (Status.FINISH, Status.FAIL)
        return self._finish_step(info, terminated)

    def reset_step_count(self) -> None:
        """Start counting toward max_steps from here (after a task's setup actions)."""
        self._steps = 0

    def _finish_step(self, info: dict, terminated: bool):
        truncated = not terminated and self._steps >= self.max_steps
        reward = 0.0
        if (terminated or truncated) and self._reward_fn is not None and not info["env_error"]:
            reward = float(self._reward_fn(self.doc_state()))
        return self._obs.model_dump(), reward, terminated, truncated, info

    # -- execution ------------------------------------------------------------------------------------------

    def _execute(self, action: Action, grounding: Grounding) -> tuple[bool, str]:
        fn, args = action.function, action.args
        if fn == "click_input" and (args["button"] != "left" or args["double"]):
            control = self._obs.control(grounding.label)
            x, y, w, h = control.rect
            button = {"left": "1", "middle": "2", "right": "3"}[args["button"]]
            self._office().xdotool("mousemove", str(x + w // 2), str(y + h // 2), "click", "--repeat",
                                   "2" if args["double"] else "1", button)
            self._settle()
            return True, f"{args['button']} {'double-' if args['double'] else ''}clicked {control.name!r}"
        if fn == "set_edit_text":
            # Click into the field first, as a person would: it takes the keyboard focus, so a following {Enter}
            # commits the value (toolbar combos such as the font size apply only on Enter).
            x, y, w, h = self._obs.control(grounding.label).rect
            if w and h:
                self._office().xdotool("mousemove", str(x + min(w // 3, 40)), str(y + h // 2), "click", "1")
                # Let the click land (focus moves, the toolbar stops refreshing the field) before the text is set.
                self._settle()
        if fn in ("click_input", "set_edit_text"):
            reply = self._office().call("act", {"function": fn, "args": args, "label": grounding.label,
                                                "name": grounding.name})
            return bool(reply.get("ok")), reply.get("result") or reply.get("error") or ""
        if fn in ("select_text", "select_paragraph", "insert_table"):
            reply = self._office().call("act", {"function": fn, "args": args})
            self._office().call("settle")  # the toolbar shows the selection's formatting a moment later
            return bool(reply.get("ok")), reply.get("result") or reply.get("error") or ""
        if fn == "keyboard_input":
            self._type_keys(args["keys"])
            return True, f"typed {args['keys']!r}"
        if fn == "wheel_mouse_input":
            x, y = self._document_center()
            dist = args["wheel_dist"]
            if dist:
                self._office().xdotool("mousemove", str(x), str(y), "click", "--repeat", str(abs(dist)),
                                       "4" if dist > 0 else "5")
            self._settle()
            return True, f"scrolled {dist}"
        if fn == "save_as":
            path = self.save_as(args["path"])
            return True, f"saved {path}"
        if fn == "summary":
            return True, args.get("text", "")
        return False, f"function {fn} is not supported by WriterEnv"

    def _focus_active_window(self) -> None:
        """Give the X input focus to the window the observation shows as active.

        Why: there is no window manager under Xvfb, so when a dialog closes nobody hands the X focus back to the
        main window and typed keys would go nowhere. A person would click the window; this is that click.
        """
        office = self._office()
        title = self._obs.window_name if self._obs.window == "dialog" else self._obs.title
        if not title:
            return
        wanted = office.xdotool("search", "--name", f"^{re.escape(title)}$", check=False).split()
        if wanted and office.xdotool("getwindowfocus", check=False).strip() not in wanted:
            office.xdotool("windowfocus", "--sync", wanted[0], check=False)

    def _type_keys(self, keys: str) -> None:
        office = self._office()
        self._focus_active_window()
        # In a dialog the next observation must show what the keys did (a search filtering a list, a field's new
        # value): remember the dialog as it is, and after typing wait until it changed and held still; for plain
        # text typed into a focused field, until the field shows all of it (a half-read search holds still too).
        dialog = self._obs.window == "dialog"
        before = office.call("digest")["digest"] if dialog else None
        tokens = parse_keys(keys)
        focused = next((c for c in self._obs.controls if "focused" in c.states), None)
        shows = (tokens[0][1] if dialog and len(tokens) == 1 and tokens[0][0] == "text" and focused is not None
                 and focused.type in TEXT_FIELD_TYPES else None)
        for kind, value in tokens:
            names = check_key_combo(value) if kind == "key" else []
            if kind == "text" or (len(names) == 1 and len(names[0]) == 1):
                # A one-character key token ({é}, {-}) is typed like text: a non-ASCII keysym sent by `xdotool key`
                # was dropped now and then under load, as in long strings below.
                self._type_text(value if kind == "text" else names[0])
            else:
                office.xdotool("key", "--delay", "0", xdotool_key(names))
        self._settle(0.05, changed_from=before, shows=shows)

    def _type_text(self, text: str) -> None:
        office = self._office()
        for chunk in re.findall(r"[\x20-\x7e]+|[^\x20-\x7e]+", text):
            # Measured here: no delay drops repeated letters ("Hello" -> "Helo"); 3 ms was exact on an idle machine
            # but dropped about 1 doubled letter in 50 under heavy load, so 6 ms;
            # non-ASCII characters need a keymap change each and still dropped at 12 ms in a
            # long string, so they go one at a time.
            if chunk.isascii():
                office.xdotool("type", "--delay", str(TYPE_DELAY_MS), "--", chunk)
                continue
            for char in chunk:
                office.xdotool("type", "--delay", str(4 * TYPE_DELAY_MS), "--", char)
                time.sleep(0.03)

    def _settle(self, seconds: float | None = None, changed_from: str | None = None, shows: str | None = None) -> None:
        # X input is asynchronous: give the office's event loop a moment to read it, then wait until the main
        # loop has handled everything queued so far (typed keys, toolbar updates); with `changed_from` (the active
        # window's digest before the input), also until that window changed (and shows `shows`) and held still
        # (office-side settle).
        time.sleep(self.settle_s if seconds is None else seconds)
        payload = None if changed_from is None else {"changed_from": changed_from, **({"shows": shows} if shows else {})}
        self._office().call("settle", payload)

    def _document_center(self) -> tuple[int, int]:
        controls = self._obs.controls
        if controls:
            xs = [c.rect[0] + c.rect[2] for c in controls]
            ys = [c.rect[1] + c.rect[3] for c in controls]
            return (max(xs) // 2, max(ys) // 2 + 100)
        return 640, 500

    # -- documents ------------------------------------------------------------------------------------------

    def _open(self, doc: str | Path | None) -> None:
        office = self._office()
        office.call("close_popups")
        if doc is None:
            url = BLANK
            self.doc_path = None
        else:
            source = Path(doc)
            if not source.is_file():
                raise FileNotFoundError(f"document not found: {source}")
            check_document(source)
            # Work on a copy: an episode must never modify the caller's file.
            # A fresh folder per episode keeps the file's own name, which the window title shows the model.
            episode_dir = Path(tempfile.mkdtemp(prefix="doc-", dir=self.workdir))
            self.doc_path = episode_dir / source.name
            # A new file, never through a name that exists: the office may write in this folder (a sandboxed one
            # too), and a symlink it planted at the copy's name would turn the copy into a write elsewhere.
            fd = os.open(self.doc_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as copy, open(source, "rb") as original:
                shutil.copyfileobj(original, copy)
            url = self.doc_path.as_uri()
        old = self.doc
        props = property_values(Hidden=False)

        def load():
            # A new window, then close the old one. Loading into the same frame ("_self") leaves four empty
            # accessible panels behind per load, and after ~100 resets the toolbars fall out of the observation.
            new = office.desktop.loadComponentFromURL(url, "_blank", 0, props)
            if old is not None and new is not None:
                try:
                    old.setModified(False)
                    old.close(True)
                except Exception:
                    pass
            # A failed load keeps the old window: the office's dialogs about the failure need a window to show in,
            # and the next load closes it.
            return new if new is not None else old

        with LoadWatch(office) as watch:
            try:
                loaded = office.guarded(load, timeout=LOAD_TIMEOUT_S)
            except OfficeError:
                raise
            except Exception as exc:
                raise ValueError(f"LibreOffice could not open {doc}: {exc}{watch.said()}") from exc
        if loaded is old or loaded is None or not office.guarded(lambda: hasattr(loaded, "Text")):
            raise ValueError(f"LibreOffice could not open {doc} as a text document{watch.said() or ' (not a document?)'}")
        self.doc = loaded
        stale, self._episode_dir = getattr(self, "_episode_dir", None), self.doc_path.parent if self.doc_path else None
        if stale is not None and stale != self._episode_dir:
            # The previous episode's copy, now closed. shutil's own removal, which works through descriptors: the
            # office is running and may change the tree meanwhile (remove_tree's retries go by name).
            shutil.rmtree(stale, ignore_errors=True)

        def show():
            window = self.doc.getCurrentController().getFrame().getContainerWindow()
            window.setPosSize(0, 0, 1280, 1000, 15)
            window.setFocus()
            return self.doc.getTitle()

        # No window manager hands the X focus to the new window (a closed dialog may still hold it).
        self._obs = Observation(title=office.guarded(show) + " - LibreOffice Writer")
        self._focus_active_window()

    def save_as(self, path: str | Path) -> Path:
        """Store the document at path (relative to the output folder), read as the guard reads it (env/paths.py).
        A write the office refuses (a full disk, a folder of that name) is an OSError saying so."""
        path = resolve_path(path, self.out_dir)
        filt = SAVE_FILTERS.get(path.suffix.lower())
        if filt is None:
            raise ValueError(f"cannot save as {path.suffix}; use one of {', '.join(SAVE_FILTERS)}")
        if self.writable is not None and not any(folder in path.parents for folder in self.writable):
            raise OSError(f"the office could not save {path}: outside the folders it may write")
        if self.writable is None:
            # A sandboxed office makes the folders itself (its store does): this process runs outside the sandbox,
            # and a folder it made by name could land outside through a link the office swapped in meanwhile.
            path.parent.mkdir(parents=True, exist_ok=True)
        props = property_values(FilterName=filt, Overwrite=True, InteractionHandler=interaction_aborter())
        try:
            self._office().guarded(lambda: self.doc.storeToURL(path.as_uri(), props), timeout=60)
        except OfficeError:
            raise
        except Exception as exc:
            # pyuno names its classes in full: com.sun.star.task.ErrorCodeIOException, com.sun.star.io.IOException
            if not type(exc).__name__.endswith("IOException"):
                raise
            said = str(getattr(exc, "Message", "") or exc).split(" at ./")[0]  # the rest is the office's source lines
            raise OSError(f"the office could not save {path}: {said}") from exc
        return path

    def doc_state(self) -> DocState:
        return DocState.model_validate(self._office().call("docstate"))

    # -- observation ----------------------------------------------------------------------------------------

    def _observe(self) -> Observation:
        data = self._office().call("observe")
        self.last_observe_ms = data.pop("elapsed_ms", None)
        return Observation.model_validate(data)

    def observe(self) -> dict:
        self._obs = self._observe()
        return self._obs.model_dump()

    def render(self):
        return render_observation(self._obs)

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._office().screenshot(path)

    # -- office lifecycle -----------------------------------------------------------------------------------

    def _office(self) -> Office:
        if self.office is None or not self.office.alive():
            raise OfficeError("the office is not running (it crashed or was killed)")
        return self.office

    def _ensure_office(self) -> None:
        if self.office is None:
            self.office = Office(display=self.display, writable=self.writable)
        elif not self.office.alive():
            self._restart()

    def _restart(self) -> None:
        self.doc = None
        if self.office is None:
            self.office = Office(display=self.display, writable=self.writable)
        else:
            self.office.restart()

    def close(self) -> None:
        if self.office is not None:
            self.office.close()
            self.office = None
        remove_tree(self._private)  # the office is gone: nothing changes the tree while it is removed
        forget(self._private)
