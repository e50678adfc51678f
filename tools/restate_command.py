#!/usr/bin/env python3
"""Record, inside a results file written before results carried their command, the command that wrote it.

Some committed results files predate the rule that every results JSON names the command that made it (top-level
`command`); results/README.md names that command. This tool copies it into the file, with a `command_note` saying it
was recorded afterwards, and changes nothing else (every number stays as it is; the test in tests/test_layout.py checks
the schema, and `git diff` shows the two added keys). A file that already has a top-level `command` is refused.

    python tools/restate_command.py results/FILE.json --command "CMD" --note "why it was recorded afterwards"
"""
import argparse, json, sys
from pathlib import Path


def restate(path: Path, command: str, note: str) -> dict:
    "The results dict of `path` with top-level `command` and `command_note` added (keys in their old order first)."
    if not path.is_file(): raise SystemExit(f"restate_command: no results file at {path}.")
    try: doc = json.loads(path.read_text())
    except json.JSONDecodeError as e: raise SystemExit(f"restate_command: {path} is not JSON ({e.msg}).") from None
    if not isinstance(doc, dict) or 'results' not in doc:
        raise SystemExit(f"restate_command: {path} is not a kdd-semnoma results file (no 'results').")
    if doc.get('command'): raise SystemExit(f"restate_command: {path} already records its command: {doc['command']!r}.")
    if not command.strip(): raise SystemExit("restate_command: --command is empty.")
    return {**doc, 'command': command, 'command_note': note}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('files', nargs='+', type=Path)
    p.add_argument('--command', required=True, help='the command that wrote the file(s), as in results/README.md')
    p.add_argument('--note', required=True, help='when and why the command is recorded afterwards')
    a = p.parse_args(argv)
    for f in a.files:
        text = json.dumps(restate(f, a.command, a.note), indent=1, allow_nan=False)
        f.write_text(text)
        print(f"{f}: command recorded")


if __name__ == '__main__':
    sys.exit(main())
