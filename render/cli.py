"""The command line: presets, verify, eval, expand, build.

Each command only turns its arguments into a call of a plain function; every CnnDeriveError
becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap
import time
from contextlib import contextmanager
from importlib import metadata

from symbolic.errors import CnnDeriveError, SpecError

EXIT_USAGE = 2
EXIT_UNPROVEN = 1

CASE_HELP = """\
CASE is a JSON object (a file, or - for stdin) with the keys X, W1, B1, W2, B2, ..., Y:
  X      channels × height × width, or height × width for one channel
  W<i>   trainable layer i (conv2d and dense, numbered in order), PyTorch's layout:
         conv2d [filters, channels, kh, kw], dense [units, inputs]
  B<i>   [filters] or [units]
  Y      a number in [0, 1] for bce; a vector of length units for softmax_ce
         (a probability vector) and for mse
Axes of length 1 may be left out: the seed's W1 as a 3×3 array, B1 as a number, W2 as a
flat list. The output is one JSON object: "L", the network's output (A2 for the seed),
and "dL/d<name>" for every parameter, in the layout the case wrote it in. Example cases
for every preset are in examples/."""


TRAIN_HELP = """\
Plain mini-batch SGD on scikit-learn's 1 797 8×8 digits (pixels scaled to [0, 1]), 25 % of each
digit held out; the gradients are the compiled symbolic ones (the proven backward chain).
The default network is the lecture's at n = 8, k = 3 (conv 3×3, ReLU, 2×2 max-pool, dense
1 unit, sigmoid + BCE), telling two digits apart. A softmax_ce spec with 10 units in its last
layer learns all ten digits, for example this file (digits10.toml):

    {spec}

  cnn-derive train --spec digits10.toml --steps 2000

Writes log.json (the config, every logged step's train and held-out loss and accuracy, the
final accuracy, the wall time) and training.png (the curves) into --out, all or nothing."""


class _Parser(argparse.ArgumentParser):
    # argparse's own error prints the usage block too; we promise one line.
    def error(self, message: str) -> None:  # type: ignore[override]
        where = self.prog.removeprefix("cnn-derive").strip()
        raise CnnDeriveError(f"{where}: {message}" if where else message)


def _spec(args: argparse.Namespace):
    """The network the arguments name: --spec, or the seed at --n/--k, or the seed."""
    from symbolic.spec import load_spec, seed_spec

    if args.spec is not None and (args.n is not None or args.k is not None):
        raise SpecError("--spec: give either --spec or --n/--k (the seed at other sizes), not both")
    if args.spec is not None:
        return load_spec(args.spec)
    if args.n is None and args.k is None:
        return load_spec("seed")
    return seed_spec(6 if args.n is None else args.n, 3 if args.k is None else args.k)


def _where(args: argparse.Namespace) -> str:
    return "--spec" if getattr(args, "spec", None) else "--n"


def cmd_presets(args: argparse.Namespace) -> int:
    """List the built-in presets with their one-line summaries."""
    from symbolic.spec import preset_summary, presets

    for name, path in sorted(presets().items()):
        print(f"{name:12} {preset_summary(path)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Prove every rule of the network; exit 0 only if all are proven."""
    from symbolic.cost import check_size
    from symbolic.rules import prove

    if args.general:
        return _verify_general(args)
    spec = _spec(args)
    check_size(spec, "verify", args.force, _where(args))
    from symbolic.rules import rules_for

    t0 = time.perf_counter()
    rules = rules_for(spec, args.end_to_end)
    results = []
    for rule in rules:
        results.append(prove(rule))
    total = time.perf_counter() - t0
    ok = all(r.proven for r in results)
    if args.json:
        head: dict = {"spec": spec.label}
        if spec.name.startswith("seed"):
            head.update(n=spec.input[1], k=spec.layers[0].kernel[0])
        print(json.dumps({**head, "rules": [r.as_json() for r in results], "all_proven": ok}, indent=2))
    else:
        print(f"cnn-derive verify: {spec.label} ({spec.n_params} trainable parameters, ties: {spec.ties})")
        width = max(len(r.rule.label) for r in results)
        for r in results:
            mark = "proven" if r.proven else "FAILED"
            print(f"  {r.rule.label:{width}}  {mark:6}  {r.seconds:7.3f} s  [{' + '.join(r.rule.methods)}]  {r.rule.text}")
        bad = sum(not r.proven for r in results)
        verdict = f"all {len(results)} rules proven" if ok else f"{bad} of {len(results)} rule(s) NOT proven"
        print(f"{verdict}: brute force minus rule expands to exactly 0 ({total:.2f} s)")
    return 0 if ok else EXIT_UNPROVEN


def _verify_general(args: argparse.Namespace) -> int:
    from symbolic.general import prove_general

    t0 = time.perf_counter()
    results = prove_general()
    total = time.perf_counter() - t0
    ok = all(r.status in ("proven", "checked") for r in results)
    if args.json:
        rows = [{"name": r.rule.name, "layer": r.rule.layer, "status": r.status, "seconds": r.seconds} for r in results]
        print(json.dumps({"general": rows, "all_proven": all(r.status == "proven" for r in results)}, indent=2))
    else:
        print("cnn-derive verify --general: every layer's rule in index notation, sizes as symbols")
        width = max(len(r.rule.name) for r in results)
        for r in results:
            extra = f" (checked at {r.checked_at})" if r.status == "checked" else ""
            print(f"  {r.rule.name:{width}}  {r.status:7}  {r.seconds:7.3f} s  {r.rule.text}{extra}")
        counts = {s: sum(r.status == s for r in results) for s in ("proven", "checked", "failed")}
        print(f"{counts['proven']} proven, {counts['checked']} checked, {counts['failed']} failed ({total:.2f} s)")
    return 0 if ok else EXIT_UNPROVEN


def eval_case(spec, case) -> dict:
    """The JSON object `eval` prints for one checked case (the same object `eval --batch` prints per line)."""
    from symbolic.batch import case_json
    from symbolic.numeric import compile_network

    args = dict(case.arrays)
    out = compile_network(spec, outputs="gradients")(args.pop("X"), args.pop("Y"), **args)
    # Only now, with the case known to be good, the compile report: bad input stays one line.
    compile_network(spec, outputs="gradients", quiet=False)
    return case_json(spec, {k: v[None] for k, v in out.items()}, 0, case.given)


def cmd_eval(args: argparse.Namespace) -> int:
    """Loss, prediction and every parameter gradient for one case file, as JSON on stdout."""
    from symbolic.case import load_case

    explicit = args.spec is not None or args.n is not None or args.k is not None
    spec = _spec(args) if explicit else None
    if args.case is None and args.batch is None:
        raise CnnDeriveError("eval: the following arguments are required: case (or --batch FILE)")
    if args.case is not None and args.batch is not None:
        raise CnnDeriveError("eval: give either a case file or --batch FILE, not both")
    if args.batch is not None:
        from symbolic.batch import run_batch

        run_batch(args.batch, spec=spec, quiet=args.quiet)
        return 0
    case = load_case(args.case, spec)
    print(json.dumps(eval_case(case.spec, case)))
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    """The brute-force derivative of L for one parameter entry, term by term."""
    import sympy as sp

    from render.printer import latex, text, to_display
    from symbolic.cost import check_size
    from symbolic.derive import expansion
    from symbolic.network import build

    spec = _spec(args)
    check_size(spec, "expand", args.force, _where(args))
    net = build(spec)
    exp = expansion(net, args.param)
    if args.latex:
        from render.notation import Partial, SumLines

        parts = [to_display(t.expr, net.atoms, factor=True) for t in exp.terms]
        print(latex(SumLines(Partial(sp.Symbol("L"), sp.Symbol(exp.param)), 2, *parts)))
        return 0
    windows = exp.windows()
    n = len(exp.terms)
    where = f" over {len(windows)} pooling window{'s' if len(windows) != 1 else ''}" if windows[0][0] else ""
    print(f"dL/d{text(sp.Symbol(exp.param))} = sum of {n} term{'s' if n != 1 else ''}{where}")
    print("  ([z > 0] is the ReLU mask; [a -> p] is 1 when a is the maximum of the window that gives p)")
    for window, ts in windows:
        if window:
            print(f"window {window}:")
        for t in ts:
            print(f"  + {text(to_display(t.expr, net.atoms, factor=True))}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Write the handout."""
    from render.build import build_handout

    with _terminate_as_exit():
        build_handout(
            _spec(args),
            out=args.out,
            formats=args.format,
            quiet=args.quiet,
            train=args.train,
            train_steps=args.train_steps,
            case=args.case,
        )
    return 0


@contextmanager
def _terminate_as_exit():
    """While inside, SIGTERM (``kill``) ends the process through Python, so the build cleans up after itself.

    Without it SIGTERM stops the interpreter at once and the half-built folder stays behind (the
    next build would remove it; see ``symbolic.files``).
    """

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a network on the 8×8 digits with the symbolic gradients; write log.json and training.png."""
    from symbolic.train import train

    result = train(
        spec=args.spec,
        digits=args.digits,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        save=True,
        quiet=args.quiet,
    )
    print(result.summary())
    return 0


class _Version(argparse.Action):
    # Looked up only when asked: reading the installed metadata costs every other command 40 ms.
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None) -> None:
        print(f"cnn-derive {_version()}")
        parser.exit()


def _version() -> str:
    try:
        return metadata.version("cnn-derive")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cnn-derive`` command."""
    p = _Parser(prog="cnn-derive", description="Symbolic derivations of backpropagation in CNNs: every rule proven exactly.")
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def network(q: argparse.ArgumentParser, force: bool = True) -> None:
        q.add_argument("--spec", default=None, help="a preset name (see `cnn-derive presets`) or a TOML spec file; default: seed")
        q.add_argument("--n", type=int, default=None, help="the seed network with an n×n input (default 6)")
        q.add_argument("--k", type=int, default=None, help="the seed network with a k×k filter (default 3)")
        if force:
            q.add_argument("--force", action="store_true", help="go on even when the work is estimated at minutes")

    pr = sub.add_parser("presets", help="list the built-in network presets")
    pr.set_defaults(func=cmd_presets)

    v = sub.add_parser("verify", help="prove every backprop rule of a network exactly")
    network(v)
    v.add_argument("--json", action="store_true", help="print JSON")
    v.add_argument(
        "--end-to-end",
        choices=("auto", "all", "none"),
        default="auto",
        help="also prove rules on L rebuilt from each stage: where small (auto, default), always, or never",
    )
    v.add_argument("--general", action="store_true", help="prove each layer type's rule for every size (index notation)")
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser(
        "eval",
        help="loss and gradients for a case file (JSON), '-' for stdin",
        epilog=CASE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("case", nargs="?", default=None, help="one case (JSON), '-' for stdin")
    network(e, force=False)
    e.add_argument(
        "--batch",
        metavar="FILE",
        default=None,
        help="many cases: JSON Lines (one case a line, '-' for stdin) or .npz (arrays X, Y, W1, B1, ... with a leading "
        "batch axis; a parameter without it is shared); prints one JSON object per case, in order",
    )
    e.add_argument("--quiet", action="store_true", help="no progress on stderr (shown for --batch files of over 10 000 cases)")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser(
        "expand", help="the expanded brute-force derivative for one parameter entry (e.g. w_11, b_1, w2_3; case does not matter)"
    )
    x.add_argument("param")
    network(x)
    x.add_argument("--latex", action="store_true", help="print LaTeX")
    x.set_defaults(func=cmd_expand)

    from symbolic import train as tr

    b = sub.add_parser(
        "build",
        help="write the handout (Markdown, LaTeX, PDF, HTML)",
        description="Write the handout into --out. Only the formats asked for and figures/ are replaced: the folder's other "
        "handout files are kept when they show the same document, and the build refuses (naming them) when they do not. "
        "A file that cnn-derive did not write, at the top of the folder or under figures/, is refused, never deleted.",
    )
    network(b, force=False)
    b.add_argument(
        "--out",
        default=None,
        help="output folder (default output/<spec name>, e.g. output/seed; with --case or --train a folder of its own: "
        "output/seed-case-<case file name>, output/seed-train)",
    )
    b.add_argument(
        "--format",
        default=None,
        help="comma-separated subset of md,tex,pdf,html (default all four; without TeX installed, all but pdf)",
    )
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.add_argument(
        "--case",
        metavar="FILE",
        default=None,
        help="make the worked example from your own numbers: a case file in eval's format (JSON, '-' for stdin; "
        "see `cnn-derive eval --help`)",
    )
    b.add_argument(
        "--train",
        action="store_true",
        help="add the section 'The gradients at work': the lecture's network at 8×8 trained with the derived gradients "
        f"on scikit-learn's digits 3 vs 8 ({tr.DEFAULT_STEPS} steps, a few seconds), with its loss/accuracy plot",
    )
    b.add_argument("--train-steps", type=int, default=None, metavar="N", help=f"with --train: SGD steps (default {tr.DEFAULT_STEPS})")
    b.set_defaults(func=cmd_build)

    t = sub.add_parser(
        "train",
        help="train a network on the 8×8 handwritten digits (scikit-learn) by SGD with the symbolic gradients",
        epilog=TRAIN_HELP.format(spec=textwrap.indent(tr.EXAMPLE_SPEC.rstrip(), "    ").lstrip()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--spec", default=None, help="a preset name or a TOML spec file with an 8×8 input; default: the seed at n = 8, k = 3")
    t.add_argument(
        "--digits",
        type=int,
        nargs="+",
        metavar="D",
        default=None,
        help=f"the digits to tell apart: two for bce (label 1 for the second; default {' '.join(map(str, tr.DEFAULT_DIGITS))}), "
        "one per output unit for softmax_ce (default all ten)",
    )
    t.add_argument("--steps", type=int, default=tr.DEFAULT_STEPS, help=f"SGD steps (default {tr.DEFAULT_STEPS})")
    t.add_argument("--lr", type=float, default=tr.DEFAULT_LR, help=f"learning rate (default {tr.DEFAULT_LR})")
    t.add_argument("--batch-size", type=int, default=tr.DEFAULT_BATCH_SIZE, help=f"images per step (default {tr.DEFAULT_BATCH_SIZE})")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial parameters, the held-out split and the order of the images")
    t.add_argument("--out", default=None, help="output folder for log.json and training.png (default output/train-<spec name>)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
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
