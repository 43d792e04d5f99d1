#!/usr/bin/env python3
"""Renders a Helm chart without helm: the subset of Go templates and Helm functions that
charts/skiff uses. For checking the chart where helm cannot be installed (it is in neither
Debian nor PyPI); `helm template` renders the same output where it exists.

    python3 charts/render.py charts/skiff [--namespace NS] [--name RELEASE] \
        [-f values.yaml] [--set a.b=c ...]

Supported: {{ }} with {{- -}} trimming; comments {{/* */}}; if / else if / else, range (lists,
maps, `$k, $v :=`), with, define / include / template; variables ($, $x := ...); pipelines;
functions: include, toYaml, nindent, indent, quote, squote, default, required, printf, print,
int, until, add, sub, mul, div, eq, ne, lt, le, gt, ge, and, or, not, empty, len, list, dict, b64enc,
trunc, trimSuffix, trimPrefix, replace, lower, upper, contains, hasKey, toString. Unknown functions and missing templates are errors (exit status 1), never guesses.
Output: the manifests as one YAML stream, each document checked to parse.
"""

import argparse
import base64
import os
import re
import sys

import yaml


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------- lexing and parsing

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def lex(text, name):
    """Splits a template into ('text', s) and ('action', s) tokens, applying trim markers."""
    tokens = []
    pos = 0
    for m in ACTION.finditer(text):
        before = text[pos:m.start()]
        if m.group(1):
            before = before.rstrip()
        tokens.append(("text", before))
        body = m.group(2).strip()
        tokens.append(("action", body, bool(m.group(3))))
        pos = m.end()
    tokens.append(("text", text[pos:]))
    # Right trim markers strip leading whitespace of the following text.
    out = []
    trim_next = False
    for tok in tokens:
        if tok[0] == "text":
            s = tok[1].lstrip() if trim_next else tok[1]
            trim_next = False
            out.append(("text", s))
        else:
            out.append(("action", tok[1]))
            trim_next = tok[2]
    if "{{" in "".join(t[1] for t in out if t[0] == "text"):
        raise TemplateError(f"{name}: unterminated action")
    return out


def parse(tokens, name, defines):
    """Builds a tree: lists of nodes ('text', s) | ('expr', src) | ('if', [(cond, body)], else)
    | ('range', vars, src, body, else) | ('with', src, body, else) | ('assign', var, src)."""
    pos = 0

    def block(stop):
        nonlocal pos
        nodes = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok[0] == "text":
                if tok[1]:
                    nodes.append(("text", tok[1]))
                continue
            body = tok[1]
            if body.startswith("/*"):
                continue
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word):].strip()
            if word in ("end", "else") and word in stop:
                return nodes, word, rest
            if word in ("end", "else"):
                raise TemplateError(f"{name}: unexpected {{{{ {body} }}}}")
            if word == "if":
                branches = []
                cond = rest
                while True:
                    inner, ended, erest = block(("end", "else"))
                    branches.append((cond, inner))
                    if ended == "end":
                        nodes.append(("if", branches, []))
                        break
                    if erest.startswith("if "):
                        cond = erest[3:].strip()
                        continue
                    otherwise, ended, _ = block(("end",))
                    nodes.append(("if", branches, otherwise))
                    break
            elif word in ("range", "with"):
                inner, ended, _ = block(("end", "else"))
                otherwise = []
                if ended == "else":
                    otherwise, _, _ = block(("end",))
                if word == "range":
                    variables = []
                    m = re.match(r"^(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*(.*)$", rest, re.S)
                    if m:
                        variables = [v for v in (m.group(1), m.group(2)) if v]
                        rest = m.group(3)
                    nodes.append(("range", variables, rest, inner, otherwise))
                else:
                    nodes.append(("with", rest, inner, otherwise))
            elif word == "define":
                tname = parse_string(rest)
                inner, _, _ = block(("end",))
                defines[tname] = inner
            elif word == "template":
                nodes.append(("expr", "include " + rest))
            else:
                m = re.match(r"^(\$\w+)\s*:?=\s*(.*)$", body, re.S)
                if m:
                    nodes.append(("assign", m.group(1), m.group(2)))
                else:
                    nodes.append(("expr", body))
        if stop:
            raise TemplateError(f"{name}: missing {{{{ end }}}}")
        return nodes, None, ""

    nodes, _, _ = block(())
    return nodes


def parse_string(src):
    src = src.strip()
    m = re.match(r'^"((?:[^"\\]|\\.)*)"', src)
    if not m:
        raise TemplateError(f"expected a quoted name, got {src!r}")
    return bytes(m.group(1), "utf-8").decode("unicode_escape")


# ---------------------------------------------------------------- expressions

TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<lp>\()|(?P<rp>\))|(?P<pipe>\|)"
    r"|(?P<var>\$\w*(?:\.[\w-]+)*)|(?P<field>(?:\.[\w-]+)+|\.)|(?P<ident>[A-Za-z_]\w*))"
)


def tokenize(src):
    out = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse expression {src!r} at {src[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


class Scope:
    def __init__(self, dot, variables):
        self.dot = dot
        self.vars = variables


def lookup(value, path, src):
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif value is None:
            return None
        else:
            raise TemplateError(f"{src}: cannot take .{part} of {type(value).__name__}")
    return value


class Renderer:
    def __init__(self, defines, root):
        self.defines = defines
        self.root = root

    def eval_pipeline(self, tokens, scope):
        commands = [[]]
        depth = 0
        for tok in tokens:
            if tok[0] == "lp":
                depth += 1
            elif tok[0] == "rp":
                depth -= 1
            if tok[0] == "pipe" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(tok)
        value = None
        first = True
        for cmd in commands:
            value = self.eval_command(cmd, scope, None if first else value, not first)
            first = False
        return value

    def eval_args(self, tokens, scope):
        args = []
        i = 0
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "lp":
                depth = 1
                j = i + 1
                while j < len(tokens) and depth:
                    if tokens[j][0] == "lp":
                        depth += 1
                    elif tokens[j][0] == "rp":
                        depth -= 1
                    j += 1
                args.append(self.eval_pipeline(tokens[i + 1 : j - 1], scope))
                i = j
                continue
            args.append(self.eval_atom(kind, text, scope))
            i += 1
        return args

    def eval_atom(self, kind, text, scope):
        if kind == "str":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "raw":
            return text[1:-1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "field":
            if text == ".":
                return scope.dot
            return lookup(scope.dot, text[1:].split("."), text)
        if kind == "var":
            name, *path = text.split(".")
            if name == "$":
                base = self.root
            elif name in scope.vars:
                base = scope.vars[name]
            else:
                raise TemplateError(f"undefined variable {name}")
            return lookup(base, path, text)
        if kind == "ident":
            if text in ("true", "false"):
                return text == "true"
            if text == "nil":
                return None
            return self.call(text, [], scope)
        raise TemplateError(f"unexpected {text!r}")

    def eval_command(self, cmd, scope, piped, has_piped):
        if not cmd:
            raise TemplateError("empty command in pipeline")
        kind, text = cmd[0]
        if kind == "ident" and text not in ("true", "false", "nil"):
            args = self.eval_args(cmd[1:], scope)
            if has_piped:
                args.append(piped)
            return self.call(text, args, scope)
        if len(cmd) > 1 or has_piped:
            raise TemplateError(f"cannot call a non-function {text!r}")
        return self.eval_args(cmd, scope)[0]

    def call(self, fn, args, scope):
        def need(n):
            if len(args) != n:
                raise TemplateError(f"{fn} takes {n} arguments, got {len(args)}")

        if fn == "include":
            need(2)
            if args[0] not in self.defines:
                raise TemplateError(f"no template {args[0]!r}")
            return self.render(self.defines[args[0]], Scope(args[1], {}))
        if fn == "toYaml":
            need(1)
            if args[0] is None:
                return "null"
            return yaml.safe_dump(args[0], default_flow_style=False, sort_keys=True).rstrip("\n")
        if fn in ("nindent", "indent"):
            need(2)
            pad = " " * int(args[0])
            text = "\n".join(pad + line if line else line for line in str_of(args[1]).split("\n"))
            return ("\n" + text) if fn == "nindent" else text
        if fn == "quote":
            return " ".join('"' + str_of(a).replace("\\", "\\\\").replace('"', '\\"') + '"' for a in args)
        if fn == "squote":
            return " ".join("'" + str_of(a) + "'" for a in args)
        if fn == "default":
            need(2)
            return args[1] if truthy(args[1]) else args[0]
        if fn == "required":
            need(2)
            if args[1] is None or args[1] == "":
                raise TemplateError(args[0])
            return args[1]
        if fn == "printf":
            return go_printf(args[0], args[1:])
        if fn == "print":
            return "".join(str_of(a) for a in args)
        if fn == "int":
            need(1)
            return int(args[0] or 0)
        if fn in ("add", "sub", "mul", "div"):
            need(2)
            a, b = int(args[0]), int(args[1])
            return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b if b else 0}[fn]
        if fn in ("eq", "ne", "lt", "le", "gt", "ge"):
            need(2)
            a, b = args
            return {
                "eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b
            }[fn]
        if fn == "and":
            for a in args:
                if not truthy(a):
                    return a
            return args[-1]
        if fn == "or":
            for a in args:
                if truthy(a):
                    return a
            return args[-1]
        if fn == "not":
            need(1)
            return not truthy(args[0])
        if fn == "empty":
            need(1)
            return not truthy(args[0])
        if fn == "len":
            need(1)
            return len(args[0] or [])
        if fn == "list":
            return list(args)
        if fn == "until":
            need(1)
            return list(range(int(args[0])))
        if fn == "dict":
            return {str_of(args[i]): args[i + 1] for i in range(0, len(args) - 1, 2)}
        if fn == "hasKey":
            need(2)
            return isinstance(args[0], dict) and args[1] in args[0]
        if fn == "b64enc":
            need(1)
            return base64.b64encode(str_of(args[0]).encode()).decode()
        if fn == "trunc":
            need(2)
            return str_of(args[1])[: int(args[0])]
        if fn == "trimSuffix":
            need(2)
            s = str_of(args[1])
            return s[: -len(args[0])] if args[0] and s.endswith(args[0]) else s
        if fn == "trimPrefix":
            need(2)
            s = str_of(args[1])
            return s[len(args[0]) :] if args[0] and s.startswith(args[0]) else s
        if fn == "replace":
            need(3)
            return str_of(args[2]).replace(args[0], args[1])
        if fn == "lower":
            need(1)
            return str_of(args[0]).lower()
        if fn == "upper":
            need(1)
            return str_of(args[0]).upper()
        if fn == "contains":
            need(2)
            return args[0] in str_of(args[1])
        if fn == "toString":
            need(1)
            return str_of(args[0])
        raise TemplateError(f"unknown function {fn!r}")

    def render(self, nodes, scope):
        out = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "expr":
                value = self.eval_pipeline(tokenize(node[1]), scope)
                out.append(str_of(value))
            elif kind == "assign":
                scope.vars[node[1]] = self.eval_pipeline(tokenize(node[2]), scope)
            elif kind == "if":
                for cond, body in node[1]:
                    if truthy(self.eval_pipeline(tokenize(cond), scope)):
                        out.append(self.render(body, Scope(scope.dot, dict(scope.vars))))
                        break
                else:
                    out.append(self.render(node[2], Scope(scope.dot, dict(scope.vars))))
            elif kind == "with":
                value = self.eval_pipeline(tokenize(node[1]), scope)
                if truthy(value):
                    out.append(self.render(node[2], Scope(value, dict(scope.vars))))
                else:
                    out.append(self.render(node[3], Scope(scope.dot, dict(scope.vars))))
            elif kind == "range":
                _, variables, src, body, otherwise = node
                value = self.eval_pipeline(tokenize(src), scope)
                items = []
                if isinstance(value, dict):
                    items = sorted(value.items())
                elif isinstance(value, list):
                    items = list(enumerate(value))
                elif isinstance(value, int):
                    items = [(i, i) for i in range(value)]
                elif value is not None:
                    raise TemplateError(f"cannot range over {type(value).__name__}")
                if not items:
                    out.append(self.render(otherwise, Scope(scope.dot, dict(scope.vars))))
                for key, item in items:
                    inner = dict(scope.vars)
                    if len(variables) == 1:
                        inner[variables[0]] = item
                    elif len(variables) == 2:
                        inner[variables[0]] = key
                        inner[variables[1]] = item
                    out.append(self.render(body, Scope(item, inner)))
        return "".join(out)


def truthy(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def str_of(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    return str(v)


def go_printf(fmt, args):
    out = []
    i = 0
    it = iter(args)
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            i += 2
            if verb == "%":
                out.append("%")
            elif verb in "sdv":
                out.append(str_of(next(it, None)))
            elif verb == "q":
                out.append('"' + str_of(next(it, None)) + '"')
            else:
                raise TemplateError(f"printf: unsupported verb %{verb}")
            continue
        out.append(c)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------- chart

def merge(base, override):
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def set_value(values, assignment):
    key, _, raw = assignment.partition("=")
    value = yaml.safe_load(raw) if raw != "" else ""
    target = values
    parts = key.split(".")
    for p in parts[:-1]:
        target = target.setdefault(p, {})
    target[parts[-1]] = value


def render_chart(chart_dir, name, namespace, value_files, sets):
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in value_files:
        with open(path) as f:
            merge(values, yaml.safe_load(f) or {})
    for s in sets:
        set_value(values, s)
    root = {
        "Values": values,
        "Release": {"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": True},
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart.get("appVersion", ""),
        },
    }
    tdir = os.path.join(chart_dir, "templates")
    defines = {}
    parsed = []
    for fname in sorted(os.listdir(tdir)):
        path = os.path.join(tdir, fname)
        with open(path) as f:
            text = f.read()
        try:
            tree = parse(lex(text, fname), fname, defines)
        except TemplateError as e:
            raise TemplateError(f"{fname}: {e}") from None
        if not fname.startswith("_") and fname.endswith((".yaml", ".yml")):
            parsed.append((fname, tree))
    renderer = Renderer(defines, root)
    docs = []
    for fname, tree in parsed:
        try:
            text = renderer.render(tree, Scope(root, {}))
        except TemplateError as e:
            raise TemplateError(f"{fname}: {e}") from None
        for doc in re.split(r"(?m)^---\s*$", text):
            if not doc.strip():
                continue
            try:
                obj = yaml.safe_load(doc)
            except yaml.YAMLError as e:
                raise TemplateError(f"{fname} renders invalid YAML: {e}\n{doc}") from None
            if obj is None:
                continue
            if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
                raise TemplateError(f"{fname} renders a document without kind/apiVersion:\n{doc}")
            docs.append(f"# Source: {chart['name']}/templates/{fname}\n{doc.strip()}\n")
    return "---\n" + "---\n".join(docs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("chart")
    p.add_argument("--name", default="skiff")
    p.add_argument("--namespace", default="skiff-system")
    p.add_argument("-f", "--values", action="append", default=[])
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args()
    try:
        sys.stdout.write(render_chart(a.chart, a.name, a.namespace, a.values, a.set))
    except TemplateError as e:
        print(f"render: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
