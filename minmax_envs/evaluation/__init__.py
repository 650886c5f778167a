"""Standardized evaluation: suites, the tuning protocol, the results store, statistics and reports.

Entry points: :func:`bench` (run or resume a suite's protocol into a results directory) and
:func:`report` (leaderboard, CSV and plots from a results directory); the ``minmax`` command wraps both.
"""

from minmax_envs.evaluation import catalogue  # noqa: F401 (registers the suites the project ships)
from minmax_envs.evaluation.agent_names import (
    AGENTS,
    check_agent,
    list_agents,
    make_agent,
    register_agent,
    register_agent_prefix,
)
from minmax_envs.evaluation.protocol import (
    BenchSummary,
    Unit,
    bench,
    config_score,
    run_one,
    run_unit,
    search_space,
    select_config,
)
from minmax_envs.evaluation.record import PHASES, validate_record
from minmax_envs.evaluation.report import report
from minmax_envs.evaluation.store import DamagedRecordWarning, ResultStore
from minmax_envs.evaluation.suites import (
    TUNE_SEED_BASE,
    Suite,
    Task,
    get_suite,
    list_suites,
    register_suite,
)

__all__ = [
    "AGENTS", "PHASES", "TUNE_SEED_BASE", "BenchSummary", "DamagedRecordWarning", "ResultStore", "Suite", "Task",
    "Unit",
    "bench", "check_agent", "config_score", "get_suite", "list_agents", "list_suites", "make_agent",
    "register_agent", "register_agent_prefix", "register_suite", "report", "run_one", "run_unit", "search_space",
    "select_config", "validate_record",
]
