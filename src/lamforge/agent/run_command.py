"""`lamforge run`: one request on a user's own document, in live Writer. The user's document is never lost.

- Every argument is checked before a model loads or the office starts: the document (exists, readable, a .docx or
  .odt whose package parses), the output (extension, folder, write access, not the input), the instruction, the
  step limit, the model.
- The input is never written over, unless --in-place, and an existing output only with --overwrite; both first
  keep the old file beside it (NAME.backup.EXT), written whole before it counts.
- The result is saved by the office into the run's private folder, then copied into a temporary file in the
  output's folder that takes the replaced file's mode, owner, group and ACLs (or a new output the document's mode)
  through its descriptor, and renamed over the output, so a crash or a full disk never leaves half a document
  (agent/user_files.py); and only when the agent says FINISH, unless --save-on-fail. Where the output is, and
  whether it may be replaced, is checked again at that moment: a file that appeared meanwhile, or one now open in
  another LibreOffice, is not replaced (the result takes OUT-2.EXT). SIGTERM and SIGHUP end the command as Ctrl-C
  does: nothing half-written stays. A temporary that a SIGKILL left behind is removed by the next run in that
  folder (remove_stale_temporaries).
- The agent writes files only into a private staging folder (run_policy), never into a folder of the user's: a name
  the office completes or a file picked from a dialog's list cannot land on a user's file, since every path there
  is outside the allowed folder (what remains is a Save the guard misreads). Afterwards the command itself copies
  what the agent saved there into the output's folder, under free names, never over a file (publish_staged).
- The office itself runs in a sandbox (env/sandbox.py) where only that folder, the copy of the document and its
  profile are writable, so a dialog the guard does not know cannot write into a user's folder either; without
  bubblewrap on the machine the command says so and relies on the guard and the staging folder.
- Without --model or --endpoint it uses the newest finished pipeline's LAM4 (out/*/models/lam4) and says so.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from lamforge.agent.guard import GuardPolicy
from lamforge.agent.user_files import (TEMPORARY_NAME, install, keep_backup, new_file_mode, numbered,
                                       publish_staged, publishable, remove_stale_temporaries, stage_result)
from lamforge.console import print_error, print_warning
from lamforge.env.office import OfficeError, OfficeScriptError, sandbox_problem
from lamforge.env.reaper import forget, remove_on_exit, remove_tree
from lamforge.env.writer_env import WriterEnv, check_document
from lamforge.models.checkpoints import newest_finished
from lamforge.models.loading import INFERENCE_DTYPES, dtype_problem
from lamforge.signals import stop_signals_interrupt

console = Console(stderr=True)
DOCUMENTS = (".docx", ".odt")
OUTPUTS = (".docx", ".odt", ".pdf")
PIPELINE_OUT = Path("out")


def shown(name: str) -> str:
    """A name the office chose, as it may be printed: control characters (an escape sequence would reach the
    terminal) written as Python writes them, and rich markup escaped (console.print would read `[bold]` as style)."""
    return escape(name if name.isprintable() else ascii(name))


def run_policy(folder):
    """What `lamforge run` lets the agent write: new files in `folder` itself (its staging folder), never a file that
    exists there, nor in a folder below or above it."""
    return GuardPolicy(output_dir=Path(folder), subfolders=False, overwrite=False)


def newest_trained_lam(root: Path = PIPELINE_OUT) -> Path | None:
    """The LAM4 of the pipeline run that finished last under root (`make demo` writes out/quick/models/lam4)."""
    return newest_finished(Path(root).glob("*/models/lam4"))


def _bad(param: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=param)


def check_dtype_argument(dtype: str) -> None:
    """A dtype the loader knows, before a model loads or the office starts (int8 is left out: a trained LAM lost
    most of its accuracy in it, docs/results.md, "Agent step latency")."""
    problem = dtype_problem(dtype, tuple(d for d in INFERENCE_DTYPES if d != "int8"))
    if problem:
        raise _bad("--dtype", problem)


def check_document_argument(doc: str) -> Path:
    path = Path(doc).expanduser()
    if not path.exists():
        raise _bad("--doc", f"{path} does not exist")
    if not path.is_file():
        raise _bad("--doc", f"{path} is not a file")
    if path.suffix.lower() not in DOCUMENTS:
        raise _bad("--doc", f"{path.name}: lamforge run edits {' and '.join(DOCUMENTS)} documents")
    if TEMPORARY_NAME.fullmatch(path.name):
        raise _bad("--doc", f"{path.name} is a name lamforge gives its temporary files (removed by later runs); "
                            f"rename it first")
    if not os.access(path, os.R_OK):
        raise _bad("--doc", f"{path} cannot be read (permission denied)")
    try:
        check_document(path)
    except ValueError as exc:
        raise _bad("--doc", str(exc)) from None
    return path.resolve()


def _writable_folder(path: Path) -> Path | None:
    """The nearest folder that exists at or above path's folder, if it can be written to (the rest is created)."""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    return folder if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else None


def name_fits(path: Path) -> bool:
    """Whether the file system takes path's name (255 bytes on most): a backup's longer name failed only after the
    whole run, and the run's result was lost."""
    folder = _writable_folder(path) or path.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    return len(os.fsencode(path.name)) <= limit


def check_backup_name(param: str, path: Path) -> None:
    # Checked on the name with room for a number (backup_path's NAME.backup-N.EXT), before any lookup of it: the
    # file system refuses even to say whether a name past its limit exists.
    if not name_fits(path.with_name(f"{path.stem}.backup-99{path.suffix}")):
        raise _bad(param, f"{path.name}: the name is too long to keep the old file beside it as "
                          f"{path.stem}.backup{path.suffix}; rename it or choose a shorter name")


def open_elsewhere(path: Path) -> str | None:
    """Who has path open in another LibreOffice, or None. The office marks an open file with `.~lock.NAME#` beside
    it; a lock that cannot be read (a folder of that name, no permission) counts as held."""
    lock = path.with_name(f".~lock.{path.name}#")
    try:
        info = os.lstat(lock)
    except FileNotFoundError:
        return None
    except OSError:
        info = None
    holder = ["?"]
    if info is not None and stat.S_ISREG(info.st_mode):  # never opened otherwise: a FIFO would block the read
        try:
            holder = lock.read_text(errors="replace").split(",")[1:2] or ["?"]
        except OSError:
            pass
    return f"by {holder[0] or '?'}; lock file {lock}"


def check_not_open_elsewhere(param: str, path: Path) -> None:
    """A file about to be replaced must not be open in another LibreOffice: its next save there would write the
    user's older text back over the result."""
    who = open_elsewhere(path)
    if who:
        raise _bad(param, f"{path} is open in LibreOffice ({who}); close it there first, or delete the lock file if "
                          f"no office has it open")


def check_output_argument(out: str, doc: Path | None, overwrite: bool = False) -> Path:
    try:
        path = Path(out).expanduser().resolve()  # resolved: a symlink to the input is the input
    except (RuntimeError, OSError) as exc:  # a symlink loop
        raise _bad("--out", f"{out} cannot be resolved: {exc}") from None
    if TEMPORARY_NAME.fullmatch(path.name):
        raise _bad("--out", f"{path.name} is a name lamforge gives its temporary files (removed by later runs); "
                            f"choose another")
    if not name_fits(path):  # first: the file system answers any other question about such a name with an error
        raise _bad("--out", f"{path.name}: the name is too long for this file system")
    if path.is_dir():
        raise _bad("--out", f"{path} is a folder; give a file name")
    if path.suffix.lower() not in OUTPUTS:
        raise _bad("--out", f"{path.name}: the output must end in {', '.join(OUTPUTS)}")
    if doc is not None and path.exists() and os.path.samefile(path, doc):
        raise _bad("--out", f"{path} is the input document; lamforge run never writes over its input unless you "
                            f"pass --in-place (which keeps a backup)")
    if path.exists() and not overwrite:
        raise _bad("--out", f"{path} exists; lamforge run replaces a file only with --overwrite (which keeps the old "
                            f"one as {path.stem}.backup{path.suffix})")
    if path.exists() and not os.access(path, os.W_OK):
        raise _bad("--out", f"{path} exists and cannot be written (permission denied)")
    if path.exists():
        check_backup_name("--out", path)
        check_not_open_elsewhere("--out", path)
    folder = _writable_folder(path)
    if folder is None:
        raise _bad("--out", f"cannot write in {path.parent} (it is not a folder, or permission is denied)")
    return path


def choose_model(model: str | None, endpoint: str | None) -> str | None:
    """The model to load (None for an endpoint); without either option, the newest finished LAM4."""
    if model and endpoint:
        raise _bad("--model", "give --model or --endpoint, not both")
    if endpoint:
        if not endpoint.startswith(("http://", "https://")):
            raise _bad("--endpoint", f"{endpoint!r} is not an http(s) URL")
        return None
    if model:
        if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
            raise _bad("--model", f"{model} is not a model folder")
        return model
    found = newest_trained_lam()
    if found is None:
        print_error(f"no trained model: no finished {PIPELINE_OUT}/*/models/lam4 under "
                    f"{Path.cwd()}. Run `make demo` (or `lamforge pipeline --preset quick`) to train one, or pass "
                    f"--model DIR or --endpoint URL.")
        raise typer.Exit(2)
    console.print(f"using the newest trained LAM: {found} (pass --model to choose another)", soft_wrap=True)
    return str(found)


def run(
    instruction: str = typer.Argument(..., help="What to do, in plain words."),
    doc: str = typer.Option(None, "--doc", help="The .docx/.odt to open (a copy is edited; a blank document if "
                                                "omitted)."),
    out: str = typer.Option(None, "--out", help="Where to save the result (.docx, .odt or .pdf); never the input, "
                                                "nor an existing file without --overwrite."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out, keeping the old file "
                                                              "beside it as NAME.backup.EXT."),
    in_place: bool = typer.Option(False, "--in-place", help="Write the result over --doc, keeping the original "
                                                            "beside it as NAME.backup.EXT."),
    save_on_fail: bool = typer.Option(False, "--save-on-fail", help="Save the result even when the agent does not "
                                                                    "finish (FAIL, step limit)."),
    model: str = typer.Option(None, "--model", help="A trained LAM folder, 'default' (the base model) or 'tiny'; "
                                                    "the newest out/*/models/lam4 if omitted."),
    endpoint: str = typer.Option(None, "--endpoint", help="An OpenAI-compatible base URL instead of a local model."),
    endpoint_model: str = typer.Option(None, "--endpoint-model", help="Model name at the endpoint."),
    max_steps: int = typer.Option(20, min=1, help="Actions the agent may take."),
    dtype: str = typer.Option("auto", "--dtype", help="The local model's weights: auto (bfloat16 where the CPU runs "
                                                      "it natively, else float32), float32, bfloat16 or float16."),
    screenshots: str = typer.Option(None, "--screenshots", help="Save a PNG of the screen after every step here."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole trajectory as JSON at the end."),
    sandbox: bool = typer.Option(True, "--sandbox/--no-sandbox", help="Run the office in a bubblewrap sandbox where "
                                                                      "it can write only into the run's private "
                                                                      "folder (without bwrap: a warning, and the "
                                                                      "guard alone)."),
):
    """Open a document in live Writer, let the agent do INSTRUCTION, and save the result. Exit 0 on FINISH."""
    if not instruction.strip():
        raise _bad("INSTRUCTION", "the instruction is empty")
    doc_path = check_document_argument(doc) if doc else None
    if in_place:
        if doc_path is None:
            raise _bad("--in-place", "--in-place needs --doc, the document to edit")
        if out and Path(out).expanduser().resolve() != doc_path:
            raise _bad("--out", "--in-place writes the result over --doc; leave --out out")
        if not os.access(doc_path, os.W_OK) or _writable_folder(doc_path) is None:
            raise _bad("--doc", f"{doc_path} or its folder cannot be written, so it cannot be edited in place")
        check_backup_name("--doc", doc_path)
        check_not_open_elsewhere("--doc", doc_path)
        out_path = doc_path
    elif not out:
        raise _bad("--out", "give --out, where to save the result (or --in-place to edit --doc itself)")
    else:
        out_path = check_output_argument(out, doc_path, overwrite)
    shots = Path(screenshots).expanduser() if screenshots else None
    if shots is not None and (shots.exists() and not shots.is_dir() or _writable_folder(shots / "x") is None):
        raise _bad("--screenshots", f"cannot write screenshots into {shots}")
    if shots is not None and shots.is_dir() and any(shots.glob("step-*.png")):
        raise _bad("--screenshots", f"{shots} holds another run's step-NN.png, which this run would replace; "
                                    f"choose an empty or new folder")
    check_dtype_argument(dtype)
    model_name = choose_model(model, endpoint)
    for stale in remove_stale_temporaries(out_path.parent):
        console.print(f"removed {stale}, the unfinished save of an earlier run that was killed", soft_wrap=True)
    _run_checked(instruction, doc_path, out_path, in_place, save_on_fail, model_name, endpoint, endpoint_model,
                 max_steps, shots, as_json, dtype, overwrite, sandbox)


def final_target(out_path: Path, may_replace: bool) -> tuple[Path, str | None]:
    """Where the result goes, checked again when the run ends (the checks before it are minutes old): out_path, or
    the first free OUT-2.EXT, ... when out_path appeared during the run without --overwrite, or is now open in
    another LibreOffice; with the reason for the other name."""
    why = None
    if os.path.islink(out_path):  # it was resolved before the run: someone put a link there since
        why = f"{out_path} became a symbolic link during the run"
    elif os.path.lexists(out_path) and not may_replace:
        why = f"{out_path} appeared during the run, and only --overwrite replaces a file"
    elif os.path.lexists(out_path) and (who := open_elsewhere(out_path)):
        why = f"{out_path} is open in LibreOffice now ({who})"
    if why is None:
        return out_path, None
    n = 2
    while os.path.lexists(numbered(out_path, n)):
        n += 1
    return numbered(out_path, n), why


def _save_result(staged: Path, out_path: Path, may_replace: bool, in_place: bool, new_mode: int, on_saved) -> Path:
    """Look at the output again, keep a backup of what the staged result replaces, then install it (see
    user_files); returns where it went."""
    for _ in range(100):
        target, why = final_target(out_path, may_replace)
        if why:
            print_warning(f"{why}; the result goes to {target} instead")
        replacing = os.path.lexists(target)
        if replacing:  # --in-place, --overwrite
            backup = keep_backup(target)
            # soft_wrap: a path is printed whole; off a terminal rich would cut it at 80 columns
            console.print(f"kept the {'original' if in_place else 'old ' + target.name} as {backup}", soft_wrap=True)
        mode = stat.S_IMODE(os.stat(target).st_mode) & 0o777 if replacing else new_mode
        try:
            install(staged, target, replace=replacing, mode=mode, like=target if replacing else None,
                    on_renamed=on_saved)
            return target
        except FileExistsError:  # a new output taken in the last moment: look again
            may_replace = False
    raise FileExistsError(f"no free name beside {out_path}")


def _run_checked(instruction, doc_path, out_path, in_place, save_on_fail, model_name, endpoint, endpoint_model,
                 max_steps, shots, as_json, dtype, overwrite=False, sandbox=True):
    # start-up time: the backends import the openai SDK (~0.4 s), and every `lamforge` command imports this module
    from lamforge.agent.backends import BackendError
    from lamforge.agent.factory import make_backend
    from lamforge.agent.loop import Agent, AgentConfig
    from lamforge.llm import LLMError

    try:
        backend = (make_backend("llm", model=endpoint_model, url=endpoint) if endpoint
                   else make_backend("model", model=model_name, dtype=dtype))
    except (BackendError, LLMError, OSError) as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None
    # Read now: the document may be moved or deleted while the agent works, and the result must still be saved.
    # Both read once, before the agent's threads start: reading the umask sets it for a moment.
    new_mode, shots_mode = new_file_mode(doc_path), new_file_mode(None)
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    # The agent's only writable folder, inside a 0700 one the sandboxed office does not see (so no mode it sets
    # there opens its files to other users).
    private = Path(tempfile.mkdtemp(prefix="lamforge-run-"))
    remove_on_exit(private)  # also after a SIGKILL
    staging = private / "staging"
    staging.mkdir(mode=0o700)
    writable = None
    if sandbox and (problem := sandbox_problem()):
        print_warning(f"the office runs without a sandbox: {problem}. The guard alone keeps the agent's writes to "
                      f"the run's private folder.")
    elif sandbox:
        writable = [staging]  # and the environment's copy of the document
        console.print("[dim]the office runs sandboxed: it can write only into the run's private folder[/]")
    env = WriterEnv(max_steps=max_steps + 5, writable=writable)
    shots_private = Path(tempfile.mkdtemp(prefix="lamforge-shots-"))
    remove_on_exit(shots_private)

    def show(record):
        where = (record.grounding or {}).get("decision", "")
        console.print(f"[bold]{record.step}[/] {record.action or record.raw_output[:120]}  [dim]{where}[/] -> "
                      f"{record.error or record.result}")
        if shots is not None:
            # Grabbed into a folder of this process's own (in the staging folder, the office could have planted a
            # symlink at the picture's name), then through install like every write into a user's folder.
            try:
                picture = env.screenshot(shots_private / "screenshot.png")
            except OfficeScriptError as exc:
                print_warning(f"no screenshot of step {record.step}: {exc}")
                return
            try:
                install(picture, shots / f"step-{record.step:02d}.png", replace=False, mode=shots_mode)
            except FileExistsError:
                print_warning(f"not saving the screenshot of step {record.step}: {shots} has a file of that name")

    agent = Agent(backend=backend, env=env, config=AgentConfig(max_steps=max_steps), policy=run_policy(staging),
                  on_step=show)
    saved = []  # where the result went, once it is there (a stop signal after the rename must not deny it)
    try:
        with stop_signals_interrupt():  # `kill` or a closed terminal: the finally blocks below still run
            result = agent.run(instruction, options={"doc": str(doc_path) if doc_path else None,
                                                     "out_dir": str(staging)})
            finished = result.outcome == "finish"
            saving = result.outcome != "env_error" and (finished or save_on_fail)
            # Staged first, so that what the user may change in the output meanwhile is seen by the checks, the
            # backup and the rename that follow; then the office stops before anything in its folder is read, so
            # nothing there changes between a check and a copy.
            staged = stage_result(env, staging, out_path.suffix) if saving else None
            env.close()
            if saving:
                out_path.parent.mkdir(parents=True, exist_ok=True)
                target = _save_result(staged, out_path, overwrite or in_place, in_place, new_mode,
                                      on_saved=lambda: saved.append(True))
                console.print(f"saved {target}", soft_wrap=True)
                # After the result: a file the agent saved never takes the result's or its backup's name.
                failed = []
                for staged, published in publish_staged(staging, out_path.parent, new_mode, skip={out_path.name},
                                                        on_error=lambda f, exc: failed.append((f, exc))):
                    console.print(f"the agent saved {shown(staged.name)}: {shown(str(published))}", soft_wrap=True)
                for f, exc in failed[:5]:
                    print_warning(f"could not copy {f.name!a}, which the agent saved: {exc}")
                if len(failed) > 5:
                    print_warning(f"and {len(failed) - 5} more files the agent saved were not copied")
                kept_back = sorted(p.name for p in staging.iterdir()
                                   if not p.name.startswith(".") and p.name != out_path.name and not publishable(p))
                if kept_back:
                    console.print(f"not copied, as no document file: {', '.join(map(shown, kept_back))}",
                                  soft_wrap=True)
            elif result.outcome != "env_error":
                console.print(f"not saved: the agent did not finish ({result.outcome}); --save-on-fail saves anyway")
                discarded = [p.name for p in staging.iterdir() if not p.name.startswith(".")]
                if discarded:
                    console.print(f"discarded what the agent saved: {', '.join(map(shown, sorted(discarded)))}",
                                  soft_wrap=True)
    except KeyboardInterrupt:
        print_warning("stopped; the result was saved" if saved else
                      f"stopped before the result was saved; {out_path} is as it was")
        raise typer.Exit(130) from None
    except (FileNotFoundError, ValueError, OfficeError, OSError) as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None
    finally:
        env.close()
        for folder in (private, shots_private):
            remove_tree(folder)  # the office is gone: nothing changes these trees any more
            forget(folder)
    console.print(f"outcome: {result.outcome} ({result.reason}) in {result.n_steps} steps, {result.total_s:.1f} s")
    if as_json:
        print(result.model_dump_json(indent=1))
    raise typer.Exit(0 if result.outcome == "finish" else 1)
