"""The command line: verify, eval, expand, build. Every CnnDeriveError becomes one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import json
import sys
import time

from symbolic.errors import CnnDeriveError

EXIT_USAGE = 2
EXIT_UNPROVEN = 1


class _Parser(argparse.ArgumentParser):
    # argparse's own error prints the usage block too; we promise one line.
    def error(self, message):
        where = self.prog.removeprefix("cnn-derive").strip()
        raise CnnDeriveError(f"{where}: {message}" if where else message)


def _spec(args):
    from symbolic.spec import NetworkSpec

    return NetworkSpec(n=args.n, k=args.k)


def cmd_verify(args) -> int:
    """Prove every rule for the given sizes; exit 0 only if all are proven."""
    from symbolic.rules import prove_all

    spec = _spec(args)
    t0 = time.perf_counter()
    results = prove_all(spec)
    total = time.perf_counter() - t0
    ok = all(r.proven for r in results)
    if args.json:
        print(json.dumps({"n": spec.n, "k": spec.k, "rules": [r.as_json() for r in results], "all_proven": ok}, indent=2))
    else:
        print(f"cnn-derive verify: n={spec.n}, k={spec.k} ({spec.n_params} trainable parameters)")
        for r in results:
            mark = "proven" if r.proven else "FAILED"
            print(f"  ({r.rule.name}) {mark:6}  {r.seconds:7.3f} s  {r.rule.statement}")
        verdict = "all rules proven" if ok else f"{sum(not r.proven for r in results)} rule(s) NOT proven"
        print(f"{verdict}: brute-force derivative minus rule expands to exactly 0 ({total:.2f} s)")
    return 0 if ok else EXIT_UNPROVEN


def cmd_eval(args) -> int:
    """Loss, prediction and the four gradients for one case file, as JSON on stdout."""
    from symbolic.case import load_case
    from symbolic.numeric import compile_network

    case = load_case(args.case)
    out = compile_network(case.spec)(case.X, case.W1, case.B1, case.W2, case.B2, case.Y)
    result = {
        "L": float(out["L"]),
        "A2": float(out["A2"]),
        "dL/dW1": out["dL/dW1"].tolist(),
        "dL/dB1": float(out["dL/dB1"]),
        "dL/dW2": [out["dL/dW2"].tolist()],
        "dL/dB2": float(out["dL/dB2"]),
    }
    print(json.dumps(result))
    return 0


def cmd_expand(args) -> int:
    """The brute-force derivative of L for one parameter, term by term."""
    import sympy as sp

    from render.printer import latex, text, to_display
    from symbolic.derive import expansion
    from symbolic.network import build

    net = build(_spec(args))
    exp = expansion(net, args.param)
    show = latex if args.latex else text
    terms = [(t, show(to_display(t.expr, net.atoms, factor=True))) for t in exp.terms]
    dname = show(sp.Symbol(exp.param))
    if args.latex:
        from render.notation import Partial, SumLines

        print(latex(SumLines(Partial(sp.Symbol("L"), sp.Symbol(exp.param)), 2,
                             *[to_display(t.expr, net.atoms, factor=True) for t in exp.terms])))
        return 0
    windows = exp.windows()
    where = f" over {len(windows)} pooling window{'s' if len(windows) != 1 else ''}" if windows[0][0] else ""
    print(f"dL/d{dname} = sum of {len(terms)} term{'s' if len(terms) != 1 else ''}{where}")
    print("  (A_2 = sigmoid(Z_2); [z > 0] is the ReLU mask; [a -> p] is 1 when a is the first max of the window that gives p)")
    shown = dict((id(t), s) for t, s in terms)
    for window, ts in windows:
        if window:
            print(f"window {window}:")
        for t in ts:
            print(f"  + {shown[id(t)]}")
    return 0


def cmd_build(args) -> int:
    from render.build import run_build

    return run_build(args)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cnn-derive", description="Symbolic derivations of backpropagation in a small CNN.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def sizes(q):
        q.add_argument("--n", type=int, default=6, help="input side n (default 6)")
        q.add_argument("--k", type=int, default=3, help="filter side k (default 3)")

    v = sub.add_parser("verify", help="prove every backprop rule exactly")
    sizes(v)
    v.add_argument("--json", action="store_true", help="print JSON")
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("eval", help="loss and gradients for a case file (JSON), '-' for stdin")
    e.add_argument("case")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("expand", help="the expanded brute-force derivative for one parameter (e.g. w_11, B_1, w2_3, B_2; case does not matter)")
    x.add_argument("param")
    sizes(x)
    x.add_argument("--latex", action="store_true", help="print LaTeX")
    x.set_defaults(func=cmd_expand)

    b = sub.add_parser("build", help="write the handout (Markdown, LaTeX, PDF)")
    sizes(b)
    b.add_argument("--out", default=None, help="output folder (default output/seed, or output/n<N>-k<K>)")
    b.add_argument("--format", default=None, help="comma-separated subset of md,tex,pdf (default all)")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.set_defaults(func=cmd_build)
    return p


def main(argv=None) -> int:
    """Entry point of the ``cnn-derive`` console script.

    >>> main(["verify", "--n", "0"])
    2
    """
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except CnnDeriveError as err:
        print(f"cnn-derive: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # A reader such as `head` closed the pipe: nothing more to say, and no traceback.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cnn-derive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
