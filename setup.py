"""Build hook: ship the top-level ``manifest/`` folder inside the package as ``bot/_manifest``.

``manifest/`` (Slack and Teams templates, Teams icons) stays where people edit it; a
checkout reads it there. Setuptools can only package files that sit inside a package, so
``build_py`` copies the folder into the build tree (the wheel gets ``bot/_manifest/…``) and
names its files as sources (the sdist gets ``manifest/…``, and a wheel built from the sdist
copies them the same way). Everything else is declared in pyproject.toml.
``bot/resources.py`` looks for ``bot/_manifest`` first, then ``manifest/`` beside ``bot/``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = "manifest"  # relative to this file, which is where setuptools runs
TARGET = ("bot", "_manifest")


class BuildPyWithManifest(build_py):
    def _manifest_files(self) -> list[str]:
        files = (p for p in Path(SOURCE).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return sorted(p.as_posix() for p in files)

    def _target(self, source: str) -> str:
        return str(Path(self.build_lib, *TARGET, Path(source).relative_to(SOURCE)))

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads manifest/ in place
            return
        for source in self._manifest_files():
            self.mkpath(str(Path(self._target(source)).parent))
            self.copy_file(source, self._target(source), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [self._target(s) for s in self._manifest_files()]

    def get_source_files(self) -> list[str]:
        sources: list[str] = super().get_source_files()
        return sources + self._manifest_files()


setup(cmdclass={"build_py": BuildPyWithManifest})
