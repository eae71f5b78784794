from __future__ import annotations

import subprocess
import sys


def test_models_never_import_data_train_or_cli():
    code = (
        "import sys, symaffect.models as m; m.list_models(); "
        "import symaffect.models.interpretability, symaffect.models.export, symaffect.models.profile; "
        "bad = [k for k in sys.modules if k.startswith(('symaffect.data', 'symaffect.train', 'symaffect.cli'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
