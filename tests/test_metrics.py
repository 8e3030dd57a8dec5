from lamforge.metrics import aggregate, aggregate_plans, plan_match, score_step
from lamforge.schema import Action

BOLD = Action(control_label="5", control_name="Bold", function="click_input").to_json()
SELECT = Action(function="select_text", args={"text": "Q3 revenue"}).to_json()


def test_step_scoring():
    assert score_step(BOLD, BOLD)["step"]
    wrong_label_same_name = Action(control_label="9", control_name="Bold", function="click_input").to_json()
    assert score_step(wrong_label_same_name, BOLD)["object"]
    other = score_step(Action(control_label="6", control_name="Italic", function="click_input").to_json(), BOLD)
    assert not other["object"] and other["operation"] and not other["step"]
    assert score_step("garbage", BOLD) == {"object": False, "operation": False, "args": False, "status": False,
                                           "step": False, "parsed": False}
    finish = Action(control_label="5", control_name="Bold", function="click_input", status="FINISH").to_json()
    assert not score_step(finish, BOLD)["status"]
    assert score_step(Action(function="select_text", args={"text": " q3 revenue "}).to_json(), SELECT)["args"]
    assert not score_step(Action(function="select_text", args={"text": "Q4"}).to_json(), SELECT)["args"]
    assert score_step(SELECT, SELECT)["object"]  # no control on either side
    assert score_step(Action(control_label="1", control_name="Strong", function="click_input").to_json(), BOLD,
                      acceptable=["Bold", "Strong"])["object"]


def test_aggregate_tsr_needs_every_step():
    rows = [dict(trajectory_id="a", **score_step(BOLD, BOLD)), dict(trajectory_id="a", **score_step(SELECT, SELECT)),
            dict(trajectory_id="b", **score_step(BOLD, BOLD)), dict(trajectory_id="b", **score_step("x", SELECT))]
    m = aggregate(rows)
    assert m["ssr"] == 75.0 and m["tsr"] == 50.0 and m["tasks"] == 2 and m["steps"] == 4


def test_exact_step_success_also_needs_the_arguments():
    wrong_text = _select("somewhere else")
    rows = [dict(trajectory_id="a", **score_step(wrong_text, SELECT)), dict(trajectory_id="a", **score_step(BOLD, BOLD)),
            dict(trajectory_id="b", **score_step(SELECT, SELECT)), dict(trajectory_id="b", **score_step(BOLD, BOLD))]
    m = aggregate(rows)
    assert m["ssr"] == 100.0 and m["tsr"] == 100.0  # the paper's metrics do not look at the arguments
    assert m["ssr_exact"] == 75.0 and m["tsr_exact"] == 50.0


def test_plan_matching_is_one_to_one():
    ref = ["Choose Format > Paragraph", "Click OK"]
    m = plan_match(["Choose Format > Paragraph", "Choose Format > Paragraph", "Press OK"], ref)
    assert m["recall"] == 0.5 and abs(m["precision"] - 1 / 3) < 1e-9 and not m["success"]
    assert plan_match(ref, ref)["success"]
    assert aggregate_plans([plan_match(ref, ref), plan_match([], ref)])["tsr"] == 50.0


def _select(text: str) -> str:
    return Action(function="select_text", args={"text": text}).to_json()


def test_args_acc_is_split_by_whether_training_targets_had_the_value():
    from lamforge.metrics import args_by_value_novelty, training_values

    end = Action(function="keyboard_input", args={"keys": "{End}"}).to_json()
    seen = training_values([_select("Q3 revenue"), BOLD, end])
    assert seen == {"q3 revenue", "{end}"}  # normalised as Args Acc compares; a click sets no string argument
    rows = [dict(score_step(_select("q3 revenue "), _select("Q3 revenue")), target=_select("Q3 revenue")),
            dict(score_step(_select("Q3 revenue"), _select("annual total")), target=_select("annual total")),
            dict(score_step(_select("new text"), _select("new text")), target=_select("new text")),
            dict(score_step(BOLD, BOLD), target=BOLD)]
    assert args_by_value_novelty(rows, seen) == {"args_acc_unseen_values": 50.0, "steps_unseen_values": 2,
                                                 "args_acc_seen_values": 100.0, "steps_seen_values": 1}
    assert args_by_value_novelty(rows[3:], seen)["args_acc_unseen_values"] is None


def test_offline_eval_tells_a_policy_that_copies_from_one_that_replays_training_values():
    from lamforge.metrics import training_values
    from lamforge.eval.offline import evaluate_steps
    from lamforge.records import StepSample, StepState
    from lamforge.schema import Observation

    class Reply:
        def __init__(self, text):
            self.text = text

    class Copier:  # selects the quoted text of the request
        def decide(self, messages, observation, task, history):
            return Reply(_select(task.split("'")[1]))

    class Habit:  # selects what it selected most in training
        def decide(self, messages, observation, task, history):
            return Reply(_select("Q3 revenue"))

    def sample(i, text):
        state = StepState(task=f"Bold '{text}'", step=1, observation=Observation())
        return StepSample(sample_id=f"s{i}", trajectory_id=f"t{i}", task_id=f"k{i}", state=state, target=_select(text))

    train = [sample(0, "Q3 revenue"), sample(1, "Q3 revenue")]
    held_out = [sample(2, "Q3 revenue"), sample(3, "annual total"), sample(4, "Lindqvist report")]
    seen = training_values(s.target for s in train)
    copier = evaluate_steps(Copier(), held_out, progress=False, train_values=seen)
    habit = evaluate_steps(Habit(), held_out, progress=False, train_values=seen)
    assert copier["args_acc_unseen_values"] == 100.0 and copier["steps_unseen_values"] == 2
    assert habit["args_acc_unseen_values"] == 0.0 and habit["args_acc_seen_values"] == 100.0
    assert "args_acc_unseen_values" not in evaluate_steps(Habit(), held_out, progress=False)


def test_report_gives_libreoffice_templates_a_column_and_a_table(tmp_path):
    import json

    from lamforge.eval.report import write_report

    def metrics(tsr, tasks):
        return {"tasks": tasks, "env_errors": 0, "tsr": tsr, "median_time_s": 1.0, "mean_steps": 2.0,
                "median_step_latency_s": 0.5, "by": {"category": {}, "family": {}, "difficulty": {}}}

    online = {"test": {"reference": metrics(100.0, 4), "lam4": {**metrics(75.0, 4), "backends": ["hf:lam4:bfloat16"]}},
              "lo_templates": {"reference": metrics(100.0, 2), "lam4": metrics(50.0, 2)}}
    (tmp_path / "eval" / "online").mkdir(parents=True)
    (tmp_path / "eval" / "online" / "online.json").write_text(json.dumps(online))
    _, md_path = write_report(tmp_path)
    md = md_path.read_text()
    assert "| agent | TSR % test (tasks) | TSR % LibreOffice's templates (tasks) |" in md
    assert "| lam4 | 75.0 (4) | 50.0 (2) |" in md
    # Each agent's row names the backend that decided (a local model's dtype follows the CPU); older runs: "-".
    assert "| lam4 | 75.0 | 4 | 1.0 | 2.0 | 0.5 | 0 | hf:lam4:bfloat16 |" in md and "| reference | 100.0 | 2 | 1.0 | 2.0 | 0.5 | 0 | - |" in md
    assert "## Online, lo_templates (LibreOffice's templates)" in md


def test_report_breaks_online_and_offline_results_down_by_category(tmp_path):
    import json

    from lamforge.eval.report import write_report

    def metrics(by_category):
        tasks = sum(t for _, t in by_category.values())
        return {"tasks": tasks, "env_errors": 0, "tsr": 50.0, "median_time_s": 1.0, "mean_steps": 2.0,
                "median_step_latency_s": 0.5,
                "by": {"category": {c: {"tsr": tsr, "tasks": t} for c, (tsr, t) in by_category.items()}}}

    online = {"test": {"lam4": metrics({"character": (100.0, 2), "page": (0.0, 2)})}}
    (tmp_path / "eval" / "online").mkdir(parents=True)
    (tmp_path / "eval" / "online" / "online.json").write_text(json.dumps(online))
    steps = {"ssr": 50.0, "steps": 4, "per_category": {"character": {"ssr": 100.0}, "page": {"ssr": 0.0}}}
    (tmp_path / "eval" / "offline").mkdir(parents=True)
    (tmp_path / "eval" / "offline" / "lam4.json").write_text(json.dumps({"steps": steps}))
    md = write_report(tmp_path)[1].read_text()
    assert "| agent | character TSR % (tasks) | page TSR % (tasks) |" in md and "| lam4 | 100.0 (2) | 0.0 (2) |" in md
    assert "| model | character SSR | page SSR |" in md and "| LAM4 | 100.0 | 0.0 |" in md


def test_exact_match_is_stricter_than_the_papers_step_metrics():
    from lamforge.metrics import exact_match, exact_match_rates, plan_exact_match, plan_exact_match_rates

    assert exact_match(BOLD, BOLD)["action"]
    lowercase = Action(control_label="5", control_name="bold", function="click_input").to_json()
    assert score_step(lowercase, BOLD)["step"] and not exact_match(lowercase, BOLD)["action"]
    padded = Action(function="select_text", args={"text": " q3 revenue "}).to_json()
    assert score_step(padded, SELECT)["args"] and not exact_match(padded, SELECT)["args"]
    rates = exact_match_rates([exact_match(BOLD, BOLD), exact_match("garbage", BOLD)])
    assert rates["action_exact_match"] == 0.5 and rates["parse_rate"] == 0.5 and rates["status_exact_match"] == 0.5
    ref = ["Choose Format > Paragraph", "Click OK"]
    assert plan_exact_match(["choose  format > paragraph", "Click OK"], ref)["exact"]
    fuzzy = ["Choose Format > Paragraph.", "Click OK."]
    assert plan_match(fuzzy, ref)["recall"] == 1.0 and plan_exact_match(fuzzy, ref)["recall"] == 0.0
    assert plan_exact_match_rates([plan_exact_match(ref, ref), plan_exact_match([], ref)])["plan_exact_match"] == 0.5


def test_online_metrics_name_the_backends_that_decided():
    from lamforge.eval.online import agent_metrics

    def record(backend):
        return {"task_id": "t", "family": "bold", "category": "character", "success": True, "outcome": "success",
                "timing": {"execute_s": 1.0}, "steps": [], **({"backend": backend} if backend is not None else {})}

    assert agent_metrics([record("hf:lam4:float32"), record("hf:lam4:bfloat16"), record(None)], {})["backends"] == \
        ["hf:lam4:bfloat16", "hf:lam4:float32"]  # a run resumed on another CPU shows both


def test_offline_evaluation_takes_a_dtype_and_says_which_backend_decided(tmp_path):
    import json

    from typer.testing import CliRunner

    from lamforge.eval.cli import app
    from lamforge.jsonl import write_jsonl
    from lamforge.train.synthetic import synthetic_step_samples

    data = tmp_path / "samples.jsonl"
    write_jsonl(data, [s.model_copy(update={"success": True}) for s in synthetic_step_samples(4)])
    result = CliRunner().invoke(app, ["offline", "--model", "tiny", "--data", str(data), "--dtype", "float32",
                                      "--json"])
    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert said["backend"].startswith("hf:") and said["backend"].endswith(":float32"), said["backend"]
    assert said["steps"]["steps"] == 4
    bad = CliRunner().invoke(app, ["offline", "--model", "tiny", "--data", str(data), "--dtype", "float7"])
    assert bad.exit_code == 1 and "unknown dtype 'float7'" in bad.output and bad.exception.__class__ is SystemExit
