from lamforge.eval.metrics import aggregate, aggregate_plans, plan_match, score_step
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


def test_plan_matching_is_one_to_one():
    ref = ["Choose Format > Paragraph", "Click OK"]
    m = plan_match(["Choose Format > Paragraph", "Choose Format > Paragraph", "Press OK"], ref)
    assert m["recall"] == 0.5 and abs(m["precision"] - 1 / 3) < 1e-9 and not m["success"]
    assert plan_match(ref, ref)["success"]
    assert aggregate_plans([plan_match(ref, ref), plan_match([], ref)])["tsr"] == 50.0
