"""The pipeline's DAG files, one per DAG. Installed, this folder is the package ``plus_analytics.dags``
(mapped in pyproject.toml), so a deployment that installs the wheel gets the DAGs with it:

* the embedded default (``make demo``, ``make airflow``) points Airflow's DAG folder here;
* an existing deployment keeps its own DAG folder and adds one small file to it (``plus-analytics
  install-dags DIR`` writes it), which calls :func:`load` into its namespace.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

#: The one file an existing deployment puts into its DAG folder (``plus-analytics install-dags DIR`` writes it).
DEPLOYMENT_FILE = '''"""The plus-analytics DAGs from the installed package (written by `plus-analytics install-dags`).

Airflow's DAG processor parses this file; every DAG of the package is loaded into it. Upgrading the package
upgrades the DAGs: this file stays as it is.
"""

from plus_analytics.dags import load

load(globals())
'''


def folder() -> Path:
    """This folder as installed (the checkout's ``dags/`` in an editable install)."""
    return Path(str(resources.files(__name__)))


def load(namespace: dict) -> list[str]:
    """Run every DAG file of the package and put its DAG (each file's ``dag``) into ``namespace``, the globals
    of the deployment's DAG file, where Airflow's DAG processor finds it; returns the DAG ids. Each call runs
    the files afresh, as the DAG processor expects of a file it parses again."""
    from airflow.sdk import DAG

    found = []
    for f in sorted(folder().glob("plus_*.py")):
        spec = importlib.util.spec_from_file_location(f"{__name__}.{f.stem}", f)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = getattr(module, "dag", None)
        if not isinstance(dag, DAG):
            raise ImportError(f"{f} defines no DAG named `dag`")
        namespace[dag.dag_id] = dag
        found.append(dag.dag_id)
    return found
