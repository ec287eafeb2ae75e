"""Finds words a person reads that our Python passes on untranslated (tests/test_i18n.py): a
string literal or f-string given straight to messages.success/error/..., ValidationError (any
module's), add_error(), a DRF error (PermissionDenied, NotFound, ...), `error_messages=`, or
a Response's {"detail": ...}. A literal wrapped in gettext/gettext_lazy/ngettext/pgettext
(`_`, `gettext`, ...) is marked; a name or a call is not judged (it may hold marked words)."""

import ast
import re
import threading
from pathlib import Path

SKIP_DIRS = {".venv", "tests", "bench", "migrations", "staticfiles", "var", "node_modules"}
MESSAGE_LEVELS = {"debug", "info", "success", "warning", "error", "add_message"}
ERRORS = {
    "ValidationError",
    "PermissionDenied",
    "NotFound",
    "ParseError",
    "AuthenticationFailed",
    "NotAuthenticated",
    "MethodNotAllowed",
    "Throttled",
    "APIException",
}


def python_files(base: Path) -> list[Path]:
    return sorted(
        path
        for path in base.rglob("*.py")
        if not SKIP_DIRS.intersection(path.relative_to(base).parts)
    )


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _texts(node: ast.expr) -> list[ast.expr]:
    """The bare literals in what is passed: a str, an f-string, or those inside a list,
    tuple or dict's values (ValidationError({"field": ["..."]}))."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        words = node.value.strip()
        # A bare lowercase code ("invalid") is for code to catch, not for a person to read.
        return [node] if re.search("[A-Za-z]", words) and not re.fullmatch("[a-z_]+", words) else []
    if isinstance(node, ast.JoinedStr):
        return [node]
    if isinstance(node, ast.BinOp):  # "..." + x, "..." % x
        return _texts(node.left)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [found for item in node.elts for found in _texts(item)]
    if isinstance(node, ast.Dict):
        return [found for value in node.values for found in _texts(value)]
    return []


def _said(node: ast.Call) -> list[ast.expr]:
    """The arguments of `node` that a person reads, when it is a call that shows words."""
    name = _name(node.func)
    owner = node.func.value if isinstance(node.func, ast.Attribute) else None
    if name in MESSAGE_LEVELS and _name(owner) == "messages" if owner is not None else False:
        index = 2 if name == "add_message" else 1
        return node.args[index : index + 1] + [k.value for k in node.keywords if k.arg == "message"]
    if name in ERRORS:
        return node.args[:1] + [k.value for k in node.keywords if k.arg in ("message", "detail")]
    if name == "add_error":
        return node.args[1:2] + [k.value for k in node.keywords if k.arg == "error"]
    if name == "Response" and node.args and isinstance(node.args[0], ast.Dict):
        return [
            value
            for key, value in zip(node.args[0].keys, node.args[0].values, strict=True)
            if isinstance(key, ast.Constant) and key.value == "detail"
        ]
    return [k.value for k in node.keywords if k.arg == "error_messages"]


def _parse(path: Path) -> ast.Module:
    source = path.read_text(encoding="utf-8")
    try:
        return ast.parse(source, filename=str(path))
    except SystemError:
        # CPython 3.11's "AST constructor recursion depth mismatch" (gh-106905): a thread whose
        # recursion counter an earlier RecursionError left off refuses any parse. A new
        # thread starts with its own counter.
        result: list[ast.Module] = []
        thread = threading.Thread(target=lambda: result.append(ast.parse(source, str(path))))
        thread.start()
        thread.join()
        if not result:
            raise
        return result[0]


def unmarked(path: Path) -> list[tuple[int, str]]:
    tree = _parse(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for argument in _said(node):
                for text in _texts(argument):
                    found.append((text.lineno, ast.unparse(text)))
    return sorted(found)
