"""A machine's fresh sample (`host.programs: fresh`): programs of the bundled tasks that no
platform measured, drawn reproducibly from the set's own design space (real TVM sampling)."""

from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.collect import fresh_sample, load_task_set


def test_a_fresh_sample_holds_programs_the_set_lacks_and_leaves_out_a_space_it_holds_whole():
    tasks, programs, meta = load_task_set(dataset.programs_dir("cpu"))
    grown = sorted(t for t, trs in programs.items() if len(trs) >= 208)[0]  # a growth drew 104 more of it: a large space
    whole = sorted(t for t, trs in programs.items() if len(trs) == 1)[0]    # an elementwise task: one program in its space
    chosen = {grown: programs[grown][:6], whole: programs[whole]}
    fresh = fresh_sample(tasks, programs, chosen, meta, seed=0)
    assert set(fresh) == {grown}  # the one-program task has nothing fresh to give
    ids = [rec.program_id(tr) for tr in fresh[grown]]
    assert len(ids) == len(set(ids)) == 6
    assert not set(ids) & {rec.program_id(tr) for tr in programs[grown]}
    assert fresh_sample(tasks, programs, chosen, meta, seed=0) == fresh  # a resumed run draws the same
    assert fresh_sample(tasks, programs, chosen, meta, seed=1) != fresh
