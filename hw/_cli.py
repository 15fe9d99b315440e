"""Command-line conventions shared by qmac's tools (no Amaranth import)."""

import argparse

__all__ = ["OneLineErrorParser"]


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message``.

    argparse prints the whole usage block before an error; a tool run from scripts and CI
    logs reads better with one line that names the problem (``--help`` has the rest).
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


