"""Task-plan mining from LibreOffice's help, its cleaning rules, data evolving and `lamforge data plans`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamforge.data.evolve import (
    CONSTRAINTS,
    EvolveConfig,
    EvolveReport,
    Job,
    LLMEvolver,
    check_evolved,
    client_chat,
    evolve,
    evolve_constraint,
    iter_jobs,
    parse_evolved,
)
from lamforge.data.plans import (
    HelpNotFoundError,
    PlansConfig,
    build_plans,
    is_actionable,
    make_task_id,
    normalise_key,
    normalise_menu_paths,
    split_of,
    split_paths,
)
from lamforge.jsonl import read_jsonl, write_jsonl
from lamforge.records import PlanPair
from llm_server import llm_server  # noqa: F401  (pytest fixture)

# ---------------------------------------------------------------------------------------------------------------
# A small help tree in the installed help's own layout.

PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>{title}</title><script>var x = 1;</script></head>
<body><header><p>LibreOffice 7.4 Help</p></header>
<div id="DisplayArea" itemprop="softwareHelp">
<meta itemprop="keywords" content="noise">
{body}
<div class="relatedtopics"><p class="related">Related Topics</p>
<div class="relatedbody"><p class="embedded"><a href="x.html">To Open Related Things, click here</a></p></div></div>
</div><footer><div class="debug"><p>This page is: x.xhp</p></div></footer></body></html>
"""


def ol(*steps: str) -> str:
    items = "".join(f'<li itemprop="itemListElement"><p class="listitem">{s}</p></li>' for s in steps)
    return f'<ol itemprop="HowTo">{items}</ol>'


def keys(mac: str, default: str) -> str:
    return (
        '<span class="switchinline">'
        f'<span hidden="true" id="MACtextx_1" class="MAC"><span class="keycode">{mac}</span></span>'
        f'<span hidden="true" id="defaulttextx_1"><span class="keycode">{default}</span></span></span>'
    )


WRITER_BREAKS = "".join([
    '<h1 id="h1"><a name="page_break"></a>Inserting and Deleting Page Breaks</h1>',
    '<h2>To Insert a Manual Page Break</h2>',
    ol(
        "Click in your document where you want the new page to begin.",
        f"Press {keys('Command', 'Ctrl')}<span class=\"keycode\">+Enter</span>.",
    ),
    '<h2>To Delete a Manual Page Break</h2>',
    ol("Click in front of the first character on the page that follows the manual page break.", "Press Backspace."),
    '<h2>To Insert Page Numbers</h2>',
    ol("Choose <span class=\"menuitem\">Insert - Field - Page Number</span>."),
    '<h2>To Turn On Protection</h2>',
    ol("Choose <span class=\"menuitem\">Tools - Protect Document</span> and select the Protect Fields box."),
    '<h2>To Turn Off Protection</h2>',
    ol("Choose <span class=\"menuitem\">Tools - Protect Document</span> and clear the Protect Fields box."),
])

WRITER_BORDERS = "".join([
    '<h1>Defining Borders for Characters</h1>',
    '<div class="warning"><div class="noteicon"><img src="w.svg" alt="Warning Icon"></div>'
    '<div class="notetext"><p>Adjacent ranges share a border.</p></div></div>',
    ol(
        "Select the range of characters around which you want to add a border.",
        "Choose <span class=\"emph\">Format - Character - Borders</span>.",
        "Select a line style in the <span class=\"emph\">Line</span> area. These settings apply to all border lines.",
        "The borders are drawn around the characters.",
        "Click.",
        "Enter the following line:",
        "Click <span class=\"emph\">OK</span> to apply the changes.",
    ),
    '<p class="paragraph">To open the Navigator, press F5.</p>',
    '<p class="paragraph">To change the numbering options for selected paragraphs, choose '
    '<span class="menuitem">Format - </span><a href="p.html"><span class="menuitem">Paragraph</span></a>, and then '
    'click the <span class="emph">Outline &amp; Numbering</span> tab.</p>',
    '<p class="paragraph">To do so, click the icon.</p>',
    '<p class="paragraph">The page style is used throughout the document. Borders are also used in the document.</p>',
    '<div class="howtoget"><p class="howtogetheader">To access this command...</p>'
    '<div class="howtogetbody"><p class="paragraph">Choose <span class="menuitem">Format - Sections...</span>.</p>'
    '</div></div>',
])

WRITER_PARAGRAPHS = "".join([
    '<h1>Text Superscript / Subscript</h1>',
    ol("Select the text.", "Press the shortcut."),
    '<h2>To Quickly Switch Page Orientation</h2>',
    '<p class="paragraph">These styles can be used to switch orientation.</p>',
    '<p class="paragraph">Place the cursor where the break is to be inserted. Go to '
    '<span class="menuitem">Insert - More Breaks - Manual Break...</span> and choose the Landscape page style.</p>',
    '<p class="paragraph">To insert a table, do the following:</p>',
    ol(
        "Choose <span class=\"menuitem\">Table - Insert Table</span>.",
        '<span class="switchinline"><span hidden="true" id="WINtextx_2" class="WIN">Click the Windows button.'
        '</span></span>',
        "Enter the number of rows and columns, and then click <span class=\"emph\">Insert</span>.",
    ),
])

SHARED_PAGE = "".join([
    '<h2>To Insert a Manual Page Break</h2>',  # a duplicate of the Writer page's task
    ol("Press Ctrl+Enter at the cursor position."),
    '<h2>To Insert a Page Number</h2>',  # a near duplicate of "To Insert Page Numbers"
    ol("Choose Insert ▸ Field ▸ Page Number."),
    '<h2>To Copy Spreadsheet Areas to Text Documents</h2>',
    ol("Open both the text document and the spreadsheet.", "Drag the selected cells into the text document."),
    '<h2>To Install an Extension</h2>',
    ol("Open a terminal.", "Type unopkg add file.oxt and press Enter."),
    '<span class="switch"><span hidden="true" id="CALCtextx_3" class="CALC">'
    '<p class="paragraph">To sum a column in a sheet, click the Sum icon.</p></span>'
    '<span hidden="true" id="WRITERtextx_3" class="WRITER">'
    '<p class="paragraph">To add a caption to an image, choose Insert &gt; Caption.</p></span>'
    '<span hidden="true" id="defaulttextx_3"><p class="paragraph">To do nothing here, click Cancel.</p></span></span>',
])

CALC_PAGE = '<h2>To Apply a Cell Style</h2>' + ol("Select the cells.", "Double-click the style in the Styles window.")


def write_help(root: Path) -> Path:
    pages = {
        "text/swriter/guide/page_break.html": ("Page Breaks", WRITER_BREAKS),
        "text/swriter/guide/border_character.html": ("Borders", WRITER_BORDERS),
        "text/swriter/guide/orientation.html": ("Orientation", WRITER_PARAGRAPHS),
        "text/shared/guide/shared.html": ("Shared", SHARED_PAGE),
        "text/scalc/guide/cellstyle.html": ("Cell Styles", CALC_PAGE),
    }
    for relative, (title, body) in pages.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAGE.format(title=title, body=body), encoding="utf-8")
    return root


@pytest.fixture
def help_dir(tmp_path: Path) -> Path:
    return write_help(tmp_path / "help" / "en-US")


@pytest.fixture
def fixture_plans(help_dir):
    return build_plans(PlansConfig(help_dir=help_dir))


def by_task(pairs: list[PlanPair]) -> dict[str, PlanPair]:
    return {p.task: p for p in pairs}


# ---------------------------------------------------------------------------------------------------------------
# Extraction and cleaning on the fixture.


def test_to_headings_become_tasks_with_their_ordered_steps(fixture_plans):
    pairs, _ = fixture_plans
    tasks = by_task(pairs)
    assert tasks["Insert a manual page break"].plan == [
        "Click in your document where you want the new page to begin.",
        "Press Ctrl+Enter.",  # the Linux/default case of the key switch, not the Mac one
    ]
    assert tasks["Insert a manual page break"].source_page == "text/swriter/guide/page_break.html"
    assert tasks["Insert a manual page break"].origin == "help"
    assert tasks["Delete a manual page break"].plan[-1] == "Press Backspace."


def test_gerund_heading_becomes_an_imperative_and_steps_are_cleaned(fixture_plans):
    pairs, report = fixture_plans
    plan = by_task(pairs)["Define borders for characters"].plan
    assert plan == [
        "Select the range of characters around which you want to add a border.",
        "Choose Format > Character > Borders.",
        "Select a line style in the Line area.",  # the descriptive second sentence is trimmed
        "Click OK to apply the changes.",
    ]
    steps = report.step_counts
    assert steps["sentences_trimmed"] >= 1
    assert steps["step_dropped:not_actionable"] >= 1  # "The borders are drawn around the characters."
    assert steps["step_dropped:too_short"] == 1  # "Click."
    assert steps["step_dropped:incomplete"] == 1  # "Enter the following line:"
    assert "Warning" not in json.dumps([p.model_dump() for p in pairs])  # icon alt text never leaks in


def test_inline_sentences_and_intro_paragraphs(fixture_plans):
    pairs, _ = fixture_plans
    tasks = by_task(pairs)
    assert tasks["Open the Navigator"].plan == ["Press F5."]
    assert tasks["Change the numbering options for selected paragraphs"].plan == [
        "Choose Format > Paragraph.",
        "Click the Outline & Numbering tab.",
    ]
    table = tasks["Insert a table"]
    assert table.plan == [
        "Choose Table > Insert Table.",
        "Enter the number of rows and columns, and then click Insert.",
    ]  # the Windows-only item is gone with its switch case
    assert "Do so" not in tasks  # vague: it only makes sense with the sentence before it


def test_heading_followed_by_paragraphs(fixture_plans):
    pairs, report = fixture_plans
    plan = by_task(pairs)["Quickly switch page orientation"].plan
    assert plan == [
        "Place the cursor where the break is to be inserted.",
        "Choose Insert > More Breaks > Manual Break and choose the Landscape page style.",
    ]
    assert report.raw_by_pattern["heading_paragraphs"] >= 1


def test_application_switch_keeps_the_writer_case(fixture_plans):
    pairs, _ = fixture_plans
    tasks = by_task(pairs)
    assert tasks["Add a caption to an image"].plan == ["Choose Insert > Caption."]
    assert not any("sum a column" in t.lower() for t in tasks)


def test_other_apps_outside_steps_and_noun_headings_are_dropped_and_counted(fixture_plans):
    pairs, report = fixture_plans
    tasks = " | ".join(p.task for p in pairs)
    assert "cell style" not in tasks.lower()
    assert report.drops["other_app_page"] == 1
    assert "Copy spreadsheet areas" not in tasks and report.drops["other_app_mentioned"] == 1
    assert "Install an extension" not in tasks and report.drops["outside_application"] == 1
    assert "Text superscript" not in tasks and report.drops["task_not_actionable"] >= 1
    assert "related" not in tasks.lower()  # related-topic links are not tasks


def test_duplicates_and_near_duplicates(fixture_plans):
    pairs, report = fixture_plans
    tasks = by_task(pairs)
    # The exact duplicate on the shared page loses to the Writer page.
    assert tasks["Insert a manual page break"].source_page.startswith("text/swriter/")
    assert report.drops["exact_duplicate"] == 1
    # "Insert a page number" is a near duplicate of "Insert page numbers"; on/off are different tasks.
    assert "Insert page numbers" in tasks and "Insert a page number" not in tasks
    assert report.drops["near_duplicate"] == 1
    assert {"Turn on protection", "Turn off protection"} <= set(tasks)
    assert len({normalise_key(p.task) for p in pairs}) == len(pairs)


def test_report_counts_add_up(fixture_plans):
    pairs, report = fixture_plans
    stages = report.stages
    assert stages[0][0] == "raw pairs" and stages[-1][1] == len(pairs) == report.final
    for (_, before, _), (_, after, dropped) in zip(stages, stages[1:]):
        assert before - dropped == after
    assert sum(report.raw_by_pattern.values()) == stages[0][1]
    assert report.pages_read == 5


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Choose Format - Paragraph", "Choose Format > Paragraph"),
        ("Format ▸ Paragraph", "Choose Format > Paragraph"),
        ("Format > Paragraph", "Choose Format > Paragraph"),
        ("Go to Insert - More Breaks - Manual Break.", "Choose Insert > More Breaks > Manual Break."),
        ("Choose menu Format - Sections... and select it", "Choose Format > Sections and select it"),
        ("then choose Edit → Paste, or press Ctrl+V", "then choose Edit > Paste, or press Ctrl+V"),
        ("Choose Tools - Options - LibreOffice Writer - Formatting Aids",
         "Choose Tools > Options > LibreOffice Writer > Formatting Aids"),
        ("Click an item category - for example, Images", "Click an item category - for example, Images"),
        ('Choose "Format - Bullets and Numbering - Position"', 'Choose "Format > Bullets and Numbering > Position"'),
        ("Use Format - Clear Direct Formatting (Ctrl+M)", "Choose Format > Clear Direct Formatting (Ctrl+M)"),
        ("Insert > Table", "Choose Insert > Table"),
        ("Click the... button.", "Click the... button."),  # the button is really named "..."
        ("Choose Format - Sections....", "Choose Format > Sections."),
    ],
)
def test_menu_paths_have_one_canonical_form(text, expected):
    assert normalise_menu_paths(text) == expected


@pytest.mark.parametrize(
    "step, actionable",
    [
        ("Click OK.", True),
        ("In the User-defined area select the edges.", True),
        ("Place the cursor in the row, hold down Alt.", True),
        ("The Insert Break dialog will open.", False),
        ("These settings apply to all border lines.", False),
    ],
)
def test_actionable_steps(step, actionable):
    assert is_actionable(step) is actionable


def test_task_ids_are_stable_and_reruns_write_identical_files(help_dir, tmp_path):
    first, _ = build_plans(PlansConfig(help_dir=help_dir))
    second, _ = build_plans(PlansConfig(help_dir=help_dir))
    write_jsonl(tmp_path / "a.jsonl", first)
    write_jsonl(tmp_path / "b.jsonl", second)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert make_task_id("Insert a table.", "p.html") == make_task_id("insert  the TABLE", "p.html")
    assert make_task_id("Insert a table", "p.html") != make_task_id("Insert a table", "q.html")
    assert read_jsonl(tmp_path / "a.jsonl", PlanPair) == first


def test_missing_help_dir_raises_a_clear_error(tmp_path):
    with pytest.raises(HelpNotFoundError, match="libreoffice-help-en-us"):
        build_plans(PlansConfig(help_dir=tmp_path / "nowhere"))


# ---------------------------------------------------------------------------------------------------------------
# Splits and loading with datasets.


def _pair(i: int, origin: str = "help") -> PlanPair:
    return PlanPair(task_id=f"help-{i:06d}", task=f"Insert table {i}", plan=["Choose Table > Insert Table."],
                    origin=origin)


def test_split_is_a_fixed_fraction_by_task_id_and_evolved_pairs_train():
    pairs = [_pair(i) for i in range(2000)]
    test = [p for p in pairs if split_of(p, 0.1) == "test"]
    assert 150 < len(test) < 250
    assert [split_of(p, 0.1) for p in pairs] == [split_of(p, 0.1) for p in pairs]
    assert all(split_of(p, 0.1) == "test" for p in test)
    assert all(split_of(_pair(i, "evolved:compose"), 0.1) == "train" for i in range(200))
    assert split_paths(Path("d/plans.jsonl"))["test"] == Path("d/plans.test.jsonl")


def test_output_loads_with_datasets(fixture_plans, tmp_path):
    from datasets import load_dataset

    pairs, _ = fixture_plans
    path = tmp_path / "plans.jsonl"
    write_jsonl(path, pairs)
    data = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert data.num_rows == len(pairs)
    assert set(data.column_names) == {"task_id", "task", "plan", "source_page", "origin"}
    assert data[0]["plan"] == pairs[0].plan


# ---------------------------------------------------------------------------------------------------------------
# Data evolving.


def _pool() -> list[PlanPair]:
    seeds = [
        ("Insert a manual page break", ["Click where the new page begins.", "Press Ctrl+Enter."]),
        ("Apply a page style", ["Choose View > Styles.", "Double-click the page style."]),
        ("Insert a table", ["Choose Table > Insert Table.", "Click Insert."]),
        ("Export the document as PDF", ["Choose File > Export As > Export as PDF.", "Click Export."]),
    ]
    return [PlanPair(task_id=make_task_id(t, "p.html"), task=t, plan=p, source_page="p.html") for t, p in seeds]


def test_rule_based_evolution_composes_and_constrains(tmp_path):
    pool = _pool()
    report = EvolveReport()
    evolved = evolve(pool, EvolveConfig(n=8), report)
    assert len(evolved) == 8 and sum(report.made.values()) == 8
    assert {p.origin for p in evolved} == {"evolved:compose", "evolved:constraint"}
    seeds = {p.task_id: p for p in pool}
    for pair in evolved:
        assert pair.task_id.startswith("evo-")
        assert len(pair.task.split()) <= max(len(s.task.split()) for s in pool) + 20
        assert all(is_actionable(step) for step in pair.plan)
    compose = next(p for p in evolved if p.origin == "evolved:compose")
    first, second = compose.task.split(", then ")
    parent_a = next(s for s in seeds.values() if s.task == first)
    assert compose.plan[: len(parent_a.plan)] == parent_a.plan
    constrained = [p for p in evolved if p.origin == "evolved:constraint"]
    for pair in constrained:
        parent = next(s for s in pool if s.task.lower().rstrip(".") in pair.task.lower())
        assert pair.plan != parent.plan and all(step in pair.plan for step in parent.plan)
    assert evolve(pool, EvolveConfig(n=8)) == evolved  # deterministic
    assert len({p.task_id for p in evolved}) == 8


def test_constraints_skip_what_the_seed_already_does():
    pdf_seed = _pool()[3]
    results = [evolve_constraint(Job("constraint", (pdf_seed,), v), EvolveConfig()) for v in range(40)]
    tasks = [r.task for r in results if isinstance(r, PlanPair)]
    assert len(tasks) == 40
    assert not any("then export the document as PDF" in t for t in tasks)
    assert len({t for t in tasks}) >= 3  # the constraint varies with the job, not only the seed
    by_name = {c.name: c for c in CONSTRAINTS}
    assert by_name["track_changes"].apply("Insert a table.") == "With changes recorded, insert a table"
    assert by_name["pdf"].apply("Insert a table") == "Insert a table, then export the document as PDF"


def test_check_evolved_enforces_the_20_word_limit():
    seed = _pool()[0]
    config = EvolveConfig()
    twenty = seed.task + " " + " ".join(["word"] * 20)
    assert check_evolved(seed, twenty, seed.plan + ["Click OK."], config) is None
    assert check_evolved(seed, twenty + " more", seed.plan + ["Click OK."], config) == "too_many_extra_words"
    assert check_evolved(seed, seed.task + ".", seed.plan, config) == "not_changed"
    assert check_evolved(seed, "Insert a page break in Calc", seed.plan, config) == "other_app_mentioned"


def test_llm_evolver_with_a_chat_callable():
    seed = _pool()[2]
    job = next(iter_jobs([seed], EvolveConfig(n=1), llm=True))
    answer = json.dumps({
        "task": "Insert a table with 3 rows and 4 columns and a heading row",
        "plan": ["Choose Table - Insert Table", "Set Rows to 3 and Columns to 4.", "Select Heading.", "Click Insert."],
    })
    seen = []

    def chat(messages):
        seen.append(messages)
        return "Here you go:\n```json\n" + answer + "\n```"

    pair = LLMEvolver(chat)(job, EvolveConfig())
    assert isinstance(pair, PlanPair) and pair.origin == "evolved:llm"
    assert pair.plan[0] == "Choose Table > Insert Table."
    assert pair.task_id == job.task_id
    assert "Insert a table" in seen[0][1]["content"] and "20 words" in seen[0][1]["content"]
    assert LLMEvolver(lambda m: "no json")(job, EvolveConfig()) == "unparsable_answer"
    too_long = json.dumps({"task": seed.task + " " + "x " * 25, "plan": ["Click Insert.", "Click OK."]})
    assert LLMEvolver(lambda m: too_long)(job, EvolveConfig()) == "too_many_extra_words"
    vague = json.dumps({"task": "Insert a nice table", "plan": ["The table looks nice.", "Click OK."]})
    assert LLMEvolver(lambda m: vague)(job, EvolveConfig()) == "plan_has_unusable_steps"
    with pytest.raises(ValueError):
        parse_evolved('{"task": 3, "plan": []}')


def test_llm_evolver_over_http(llm_server):  # noqa: F811
    from lamforge.llm import LLMClient

    answer = json.dumps({"task": "Insert a table with 2 rows", "plan": ["Choose Table > Insert Table.",
                                                                        "Set Rows to 2.", "Click Insert."]})
    server = llm_server([answer])
    chat = client_chat(LLMClient(url=server.url, model="m"))
    seed = _pool()[2]
    pair = LLMEvolver(chat)(Job("llm", (seed,)), EvolveConfig())
    assert isinstance(pair, PlanPair) and pair.task == "Insert a table with 2 rows"
    assert server.chat_requests[0].body["messages"][1]["content"].startswith("Rewrite the task")


# ---------------------------------------------------------------------------------------------------------------
# The command.


def _run(*args: str):
    from lamforge.cli import app

    return CliRunner().invoke(app, ["data", "plans", *args])


def test_cli_writes_files_and_prints_json_counts(help_dir, tmp_path):
    out = tmp_path / "out" / "plans.jsonl"
    result = _run("--help-dir", str(help_dir), "--out", str(out), "--evolve", "4", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    written = read_jsonl(out, PlanPair)
    assert summary["files"][str(out)] == len(written) == summary["help_pairs"] + 4
    assert summary["report"]["final"] == summary["help_pairs"]
    assert sum(summary["evolve"]["made"].values()) == 4
    paths = split_paths(out)
    train, test = read_jsonl(paths["train"], PlanPair), read_jsonl(paths["test"], PlanPair)
    assert len(train) + len(test) == len(written)
    assert all(p.origin == "help" for p in test)
    from datasets import load_dataset

    splits = load_dataset("json", data_files={s: str(path) for s, path in paths.items()},
                          cache_dir=str(tmp_path / "cache"))
    assert splits["train"].num_rows == len(train) and splits["test"].num_rows == len(test)
    table = _run("--help-dir", str(help_dir), "--out", str(out))
    assert table.exit_code == 0 and "drop near_duplicate" in table.stdout


def test_cli_llm_evolution_resumes_without_repeating_calls(help_dir, tmp_path, llm_server):  # noqa: F811
    answer = json.dumps({"task": "Insert a table with two rows and then delete it",
                         "plan": ["Choose Table > Insert Table.", "Set Rows to 2.", "Click Insert.",
                                  "Choose Table > Delete > Table."]})
    server = llm_server([answer])
    out = tmp_path / "plans.jsonl"
    args = ["--help-dir", str(help_dir), "--out", str(out), "--evolve", "3", "--llm-url", server.url, "--json"]
    first = _run(*args)
    assert first.exit_code == 0, first.output
    calls = len(server.chat_requests)
    assert calls == 3
    llm_pairs = [p for p in read_jsonl(out, PlanPair) if p.origin == "evolved:llm"]
    assert len(llm_pairs) == 3
    second = _run(*args)
    assert second.exit_code == 0, second.output
    assert len(server.chat_requests) == calls  # nothing asked again
    assert json.loads(second.stdout[second.stdout.index("{"):])["evolve"]["skipped_existing"] == 3
    assert [p for p in read_jsonl(out, PlanPair) if p.origin == "evolved:llm"] == llm_pairs


def test_cli_reports_a_missing_help_dir_without_a_traceback(tmp_path):
    result = _run("--help-dir", str(tmp_path / "none"), "--out", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 1
    assert "libreoffice-help-en-us" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------------
# The real installed help (Debian libreoffice-help-en-us, present here and in CI).

needs_help = pytest.mark.help  # without the help installed, tests/conftest.py stops the run with one message


@pytest.fixture(scope="module")
def real_plans():
    return build_plans(PlansConfig())


@needs_help
def test_real_help_yields_at_least_500_clean_pairs(real_plans):
    pairs, report = real_plans
    assert len(pairs) >= 500, report.to_dict()
    assert report.pages_read > 2000
    modules = {p.source_page.split("/")[1] for p in pairs}
    assert modules == {"swriter", "shared"}
    assert sum(p.source_page.startswith("text/swriter/guide/") for p in pairs) >= 100
    assert sum(p.source_page.startswith("text/shared/guide/") for p in pairs) >= 50


@needs_help
def test_real_pairs_are_clean(real_plans):
    pairs, _ = real_plans
    assert len({p.task_id for p in pairs}) == len(pairs)
    assert len({normalise_key(p.task) for p in pairs}) == len(pairs)
    for pair in pairs:
        assert pair.plan and pair.task[0].isupper()
        for step in pair.plan:
            assert is_actionable(step), (pair.task, step)
            assert 2 <= len(step.split()) <= 50
            assert normalise_menu_paths(step) == step  # every menu path is already in canonical form
    assert not any(re.search(r"\b(Calc|Impress)\b", " ".join([p.task, *p.plan])) for p in pairs)
    assert sum(" > " in " ".join(p.plan) for p in pairs) > 200


@needs_help
def test_real_help_split_holds_out_about_a_tenth(real_plans):
    pairs, _ = real_plans
    share = sum(split_of(p) == "test" for p in pairs) / len(pairs)
    assert 0.06 < share < 0.14
