#!/usr/bin/env python3
"""Sorts the rows of the `duplicates` command by what the shared lines are.

Usage: duplicates --most 200 --seconds 120 | python3 tools/duplicates/classify.py

Each side of a row is read from the tree and its lines are put in one of:
  import       package clause and import blocks
  declaration  lines inside a struct, interface, const or var block or a
               test table's element type (fields, constants, Ginkgo spec
               variables), and single-line type/const/var declarations
  table        in a _test.go file, a row of a test table (a line that ends
               an element literal with "},")
  statement    anything else (function bodies, signatures, case clauses)
A row is "import", "declaration", "table" or "generated" when that is what
both sides share (at most one statement line on a side); otherwise it is "statement" and its statement lines are shown,
so what remains to read is the code that repeats itself.
"""
import re
import sys

DECL_OPEN = re.compile(r'^(?:(?:type\s+\w+(?:\[[^\]]*\])?\s+)?(?:struct|interface)\s*\{|(?:const|var)\s*\(|.*\[\]struct\s*\{|.*\bstruct\s*\{)$')
SINGLE_DECL = re.compile(r'^(?:type|const|var)\s')
TRIVIAL = {'', ')', '}', '{', '},', '}{', '})', '}),'}


def classify_lines(path):
    kinds = {}
    depth = []  # stack of 'decl' / 'code' for open braces/parens
    in_import = False
    with open(path, errors='replace') as f:
        lines = f.read().split('\n')
    for i, raw in enumerate(lines, 1):
        t = raw.strip()
        if t.startswith('package ') or t.startswith('import "') or (t.startswith('import ') and '"' in t):
            kinds[i] = 'import'
            continue
        if t.startswith('import ('):
            in_import = True
            kinds[i] = 'import'
            continue
        if in_import:
            kinds[i] = 'import'
            if t == ')':
                in_import = False
            continue
        if t in TRIVIAL or t.startswith('//'):
            kinds[i] = 'trivial'
        elif path.endswith('_test.go') and t.endswith('},'):
            kinds[i] = 'table'
        elif depth and depth[-1] == 'decl':
            kinds[i] = 'declaration'
        elif DECL_OPEN.match(t) or SINGLE_DECL.match(t):
            kinds[i] = 'declaration'
        else:
            kinds[i] = 'statement'
        # track nesting
        code = re.sub(r'"(?:\\.|[^"\\])*"|`[^`]*`|//.*$', '', t)
        opens = code.count('{') + code.count('(')
        closes = code.count('}') + code.count(')')
        net = opens - closes
        if net > 0:
            kind = 'decl' if (DECL_OPEN.match(t) or (depth and depth[-1] == 'decl' and code.endswith('{'))) else 'code'
            depth.extend([kind] * net)
        elif net < 0:
            del depth[max(0, len(depth) + net):]
    return lines, kinds


def side(spec):
    path, rng = spec.rsplit(':', 1)
    a, b = map(int, rng.split('-'))
    return path, a, b


def main():
    cache = {}
    counts = {}
    shown = []
    for row in sys.stdin:
        if not row.startswith('D'):
            continue
        parts = row.split()
        sides = [side(parts[1]), side(parts[3])]
        stmts = []
        generated = True
        for path, a, b in sides:
            if path not in cache:
                cache[path] = classify_lines(path)
            lines, kinds = cache[path]
            generated &= path.startswith('zz_') or '/zz_generated' in path
            stmts.append([(i, lines[i - 1].strip()) for i in range(a, b + 1) if kinds.get(i) == 'statement'])
        if generated:
            cat = 'generated'
        elif max(len(s) for s in stmts) <= 1:
            cat = 'import'
            for kind in ('declaration', 'table'):
                if any(kinds_of(cache, p, a, b, kind) for p, a, b in sides):
                    cat = kind
        else:
            cat = 'statement'
        counts[cat] = counts.get(cat, 0) + 1
        if cat == 'statement':
            shown.append((row.strip(), stmts))
    print(' '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    for row, stmts in shown:
        print(row)
        for i, t in stmts[0]:
            print(f'    {i}: {t}')


def kinds_of(cache, path, a, b, kind):
    return any(cache[path][1].get(i) == kind for i in range(a, b + 1))


if __name__ == '__main__':
    main()
