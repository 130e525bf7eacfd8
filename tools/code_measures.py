"""Code-shape measures of the library and the demo (issue 14): longest function, most parameters, imports of segcount
modules inside function bodies. `python tools/code_measures.py [--json]`."""
import ast, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for p in (ROOT / 'segcount').glob('*.py') if p.name != '_modidx.py') + sorted((ROOT / 'demo').glob('*.py'))

def _params(f) -> int:
    a = f.args
    n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
    return n - (1 if a.args and a.args[0].arg in ('self', 'cls') else 0)

def measures(files=FILES) -> dict:
    "Longest function (lines), most parameters and in-function imports of segcount modules, with where they are."
    funcs, inner = [], []
    for p in files:
        tree = ast.parse(p.read_text(), str(p))
        for f in ast.walk(tree):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            funcs.append((f.end_lineno - f.lineno + 1, _params(f), f'{p.relative_to(ROOT)}:{f.lineno} {f.name}'))
            for n in ast.walk(f):
                mod = n.module if isinstance(n, ast.ImportFrom) else (n.names[0].name if isinstance(n, ast.Import) else None)
                if mod and (mod.startswith('segcount') or (isinstance(n, ast.ImportFrom) and n.level)):
                    inner.append(f'{p.relative_to(ROOT)}:{n.lineno}')
    inner = sorted(set(inner))
    longest, most = max(funcs), max(funcs, key=lambda t: t[1])
    return {'longest_function_lines': longest[0], 'longest_function': longest[2],
            'most_parameters': most[1], 'most_parameters_function': most[2],
            'in_function_segcount_imports': len(inner), 'functions': len(funcs)}

if __name__ == '__main__':
    m = measures()
    print(json.dumps(m, indent=1) if '--json' in sys.argv else '\n'.join(f'{k}: {v}' for k, v in m.items()))
