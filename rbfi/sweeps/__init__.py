"""Running a grid of independent tasks: in this process one after another (the default), or as
Ray tasks on a local Ray instance or an existing cluster. Generic: a task names a function
("module:function") and a JSON payload; the sweeps part knows nothing of what it computes.

    from rbfi.sweeps import Task, run_tasks, LocalEngine
    report = run_tasks(tasks, root, LocalEngine())
"""

from rbfi.sweeps.engine import Engine, LocalEngine, execute
from rbfi.sweeps.scheduler import Task, TaskReport, run_tasks

__all__ = ["Engine", "LocalEngine", "Task", "TaskReport", "execute", "run_tasks"]
