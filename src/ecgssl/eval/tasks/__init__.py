"""Evaluation tasks as plug-ins of ``ecgssl.eval.suite.run_suite``.

A task is one module defining a ``Task`` subclass (``ecgssl.eval.tasks.base``) registered under
its name::

    from ecgssl.eval.tasks import register_task
    from ecgssl.eval.tasks.base import Task

    @register_task
    class QTPrediction(Task):
        name = "qt"
        ...

``SuiteConfig(tasks=[...])`` chooses among ``list_tasks()``; the suite runs the chosen ones in
registration order (built-ins: probe, lowlabel, regression, segmentation) and each writes its
section of the report and its entries of ``report.json``. Built-in tasks live in the modules of
``_BUILTIN`` and are imported on first use; a new built-in adds its module there (one line).
"""

from __future__ import annotations

import importlib

_REGISTRY: dict[str, type] = {}

# Built-in tasks in the order the suite runs them and writes their report sections.
_BUILTIN: dict[str, str] = {
    "probe": "ecgssl.eval.tasks.probe",
    "lowlabel": "ecgssl.eval.tasks.lowlabel",
    "regression": "ecgssl.eval.tasks.regression",
    "segmentation": "ecgssl.eval.tasks.segmentation",
}


def register_task(cls: type) -> type:
    """Class decorator: register a ``Task`` subclass under its ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a class attribute name = '<task name>'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"task {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def _load_builtin() -> None:
    for name, module in _BUILTIN.items():
        if name not in _REGISTRY:
            importlib.import_module(module)
            if name not in _REGISTRY:
                raise ImportError(f"{module} imported but registered no task {name!r}")


def list_tasks() -> list[str]:
    """Task names in run order: the built-ins, then tasks registered at run time."""
    _load_builtin()
    return list(_BUILTIN) + [n for n in _REGISTRY if n not in _BUILTIN]


def create_task(name: str):
    """A fresh instance of task ``name`` (one per suite run: it may keep per-run state)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; known: {list_tasks()}")
    return _REGISTRY[name]()
