"""Whether a person watches this process's output: progress bars are drawn live only there."""

from __future__ import annotations

import os
import sys


def watched() -> bool:
    """True where a bar redrawn in place is seen: a terminal, or a notebook someone is looking at (JupyterLab or
    Notebook, whose server names the kernel's session in JPY_SESSION_NAME, or Colab). False for a notebook
    executed by nbclient/nbmake and for output sent to a file: there every redraw would stay as a line."""
    return bool(os.environ.get("JPY_SESSION_NAME")) or "google.colab" in sys.modules or sys.stderr.isatty()
