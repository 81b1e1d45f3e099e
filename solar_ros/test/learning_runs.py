"""A finished in-process learning run from a settings dict, as the learning tests need one."""

from pathlib import Path
from typing import Any, Dict

from solar_ros.learn import run
import yaml


def finished_run(settings: Dict[str, Any], root: Path) -> Path:
    """Write ``settings`` to ``root/run.yaml``, run it to the end in one thread, return the run.

    The run directory is ``root/run``; the test fails if ``learn.run`` exits with an error.
    """
    config = root / 'run.yaml'
    config.write_text(yaml.safe_dump(settings))
    run_dir = root / 'run'
    assert run.main(['--config', str(config), '--run-dir', str(run_dir), '--threads', '1']) == 0
    return run_dir
