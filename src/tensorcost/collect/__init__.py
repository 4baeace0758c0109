"""Collect measured programs: tasks from networks, sampled schedules, real builds and runs.

TVM lives here (and in `tuning`). The flow is split so that the same programs can be measured
on several targets: `programs.sample_programs` draws schedules once per task (target-independent
trace JSON), and `measure.measure_task_set` re-applies each trace and measures it on one target.
"""

from __future__ import annotations

from ..params import MeasureConfig  # the protocol's params (params.yaml's `measure`)
from .programs import Task, check_task_set_kind, extract_tasks, fresh_programs, fresh_sample, load_task_set, load_tasks, network_to_relax, read_task_programs, read_tasks, sample_programs, sample_task_set, sample_task_set_from, save_task_set, select_tasks, task_program_counts, task_set_kind
from .measure import BUILD_TIMEOUT, COMPILE_HOST, INSTANTIATION_ERROR, NO_ERROR, RUNNER_UNAVAILABLE, RUNTIME_DEVICE, RUN_TIMEOUT, RunIncomplete, clip_error, collect_target, finished_record_ids, make_builder_runner, measure_task, measure_task_set, parts_dir, remeasure, run_error_code, runner_device_type, set_aside_unavailable, write_metaschedule_database

__all__ = ["BUILD_TIMEOUT", "COMPILE_HOST", "INSTANTIATION_ERROR", "MeasureConfig", "NO_ERROR", "RUNNER_UNAVAILABLE", "RUNTIME_DEVICE", "RUN_TIMEOUT", "RunIncomplete", "Task", "check_task_set_kind", "clip_error", "collect_target", "extract_tasks", "finished_record_ids", "fresh_programs", "fresh_sample", "load_task_set", "load_tasks", "make_builder_runner", "measure_task", "measure_task_set", "network_to_relax", "parts_dir", "read_task_programs", "read_tasks", "remeasure", "run_error_code", "runner_device_type", "sample_programs", "sample_task_set", "sample_task_set_from", "save_task_set", "select_tasks", "set_aside_unavailable", "task_program_counts", "task_set_kind", "write_metaschedule_database"]
