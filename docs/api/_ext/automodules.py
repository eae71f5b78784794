"""``.. automodules:: PACKAGE``: one section and one ``automodule`` per public module.

Options: ``:recursive:`` also walks subpackages (each subpackage is itself a section);
``:exclude: a, b`` leaves out those dotted names (and what is under them). Modules whose
last name starts with ``_`` are private and never listed.
"""

from __future__ import annotations

import importlib
import pkgutil

from docutils.parsers.rst import Directive, directives

UNDERLINE = "-"


def public_modules(package: str, *, recursive: bool, exclude: tuple[str, ...] = ()) -> list[str]:
    """Dotted names of the public modules of ``package`` (itself first), sorted."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        full = f"{package}.{info.name}"
        if info.name.startswith("_") or any(full == e or full.startswith(e + ".") for e in exclude):
            continue
        if info.ispkg:
            if recursive:
                names += public_modules(full, recursive=True, exclude=exclude)
        else:
            names.append(full)
    return names


class AutoModules(Directive):
    required_arguments = 1
    option_spec = {"recursive": directives.flag, "exclude": directives.unchanged}

    def run(self):
        package = self.arguments[0]
        exclude = tuple(s.strip() for s in self.options.get("exclude", "").split(",") if s.strip())
        mods = public_modules(package, recursive="recursive" in self.options, exclude=exclude)
        source, _ = self.state_machine.get_source_and_line(self.lineno)
        lines: list[str] = []
        for mod in mods:
            title = f"``{mod}``"
            lines += [title, UNDERLINE * len(title), "", f".. automodule:: {mod}", ""]
        self.state_machine.insert_input(lines, source)
        return []


def setup(app):
    app.add_directive("automodules", AutoModules)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
