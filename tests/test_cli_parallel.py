#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The differential test of `cfutures run` against GNU parallel.

Runs each command line below through both `parallel --will-cite ARGS` and
`cfutures run ARGS`, each in a fresh directory holding the same files, and
compares what a user would: the exit status, standard output (sorted when
the order is not fixed, i.e. without -k and with more than one job at
once) and every file left in the directory (job logs compared on the
columns that do not depend on time: Seq, Exitval, Signal and Command).
Standard error is not compared (the programs name themselves there).
GNU parallel's answers are kept in a cache ($CF_GNU_CACHE, by default a
folder in the temp directory) keyed by its version and the whole case, so
that the test command's later stages run only `cfutures run`; an answer
that names the run's own temp folders is never kept.

Usage: test_cli_parallel.py CFUTURES [-v] [-k FILTER]
Exit status 0 when every command line matched, 1 otherwise, 77 (skipped)
when GNU parallel is not installed (bench/cli/install.sh installs it).
"""
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

HOSTILE = ["a b", "it's", 'd"q', "$HOME", "*", "a*", "x;y", "`id`", "-n",
           "tab\there", "back\\slash", "caf\u00e9", "{}", "~", "#c", "",
           "  lead", "trail ", "a&b|c", "(p)", "$(echo x)", "e=f", "!bang",
           "--", "[ab]"]
PATHS = ["dir/sub/f.tar.gz", "f", "x y/.z", "/a", ".b/", "a.b/c", "noext.",
         "..", "/", "s p/a c.e"]


class Case:
    def __init__(self, args, stdin=None, files=None, ordered=None,
                 joblogs=(), name=None, env=None):
        self.args = args
        self.env = env or {}
        self.stdin = stdin
        self.files = files or {}
        # Output order is fixed with -k, -j1, or --dry-run.
        if ordered is None:
            ordered = any(a in ("-k", "--keep-order", "-j1")
                          for a in args) or \
                ("-j" in args and args[args.index("-j") + 1] == "1")
        self.ordered = ordered
        self.joblogs = joblogs
        self.name = name or " ".join(repr(a) if (" " in a or not a) else a
                                     for a in args)


def cases():
    c = []
    add = lambda *a, **k: c.append(Case(list(a), **k))  # noqa: E731

    # Replacement values are quoted, whatever quotes the command puts
    # around them, and names with spaces, quotes, $, *, newlines survive.
    # (Inside "..." or '...' in the command cfutures quotes for that
    # context, where GNU parallel's quotes would pass along as characters
    # or split the value: those command lines differ on purpose, and
    # tests/test_cli.c checks them.)
    for tmpl in (["echo"], ["echo", "{}"], ["printf", "[%s]\\n", "{}"],
                 ["echo [{}]"], ["printf '%s|' {} {}; echo"],
                 ["printf '<%s>\\n'", "{}"], ["touch", "{}"],
                 ["touch", "pre-{}"], ["echo", "{}", ">", "out-{#}"],
                 ["echo {} | od -c"], ["printf", "%s\\n", "{}", "{.}", "{/}"]):
        add("-k", *tmpl, ":::", *HOSTILE)
    add("-k", "-q", "printf", "%s\\n", "{}", "a b", ":::", *HOSTILE)
    add("-k", "cp", "{}", "{.}.bak", ":::", "f1.txt", "f2.txt", "f 3.txt",
        files={"f1.txt": "one\n", "f2.txt": "two\n", "f 3.txt": "three\n"})
    add("rm", "-v", "{}", ":::", "a*", files={"a*": "", "a1": "", "a2": ""})
    add("rm", "{}", ":::", "a*", "b c", files={"a*": "", "a1": "", "b c": "",
                                                 "b": ""})
    add("-k", "echo", ":::", "a\nb", "c")
    add("-k", "-0", "printf", "[%s]\\n", stdin=b"x\ny\0a b\0$HOME\0*\0")
    add("-k", "--null", "touch", stdin=b"new\nline\0sp ace\0")
    add("-k", "-0", "echo", stdin=b"a\0\0b\0")

    # Hostile names through the other ways in and out.
    hostile0 = "\0".join(HOSTILE + ["new\nline", "two\n\nlines"]) + "\0"
    add("-k", "-0", "-a", "names", "printf", "'<%s>\\n'", "{}",
        files={"names": hostile0})
    add("-k", "-0", "touch", "f-{}", stdin=hostile0.encode())
    add("-k", "-0", "--tag", "echo", "x", stdin=hostile0.encode())
    add("-k", "--tag", "echo", ":::", *HOSTILE, ":::", "1", "2")
    add("-k", "echo", "{2}", "{1}", ":::", *HOSTILE[:12], ":::", *HOSTILE[12:])
    add("-k", "-j1", "-X", "printf", "'[%s]'", "x{}y", ":::", *HOSTILE)
    add("-k", "-n3", "printf", "'[%s]'", ":::", *HOSTILE)
    # More arguments than a command line holds: jobs take as many as fit;
    # an input too long alone is refused (exit 255, nothing runs).
    many = "".join("%d\n" % i for i in range(1, 100001)).encode()
    add("-k", "-n", "100000", "printf", "'%s\\n'", stdin=many,
        name="-k -n 100000 printf (100000 inputs)")
    add("-k", "-N", "100000", "printf", "'%s\\n'", "{}", stdin=many,
        name="-k -N 100000 printf {} (100000 inputs)")
    # Records the command does not hold do not count against its length
    # (GNU parallel cuts such jobs at about 31,800 records: docs/cli.md).
    add("-k", "-N", "30000", "echo {#}",
        stdin="".join("%d\n" % i for i in range(1, 30001)).encode(),
        name="-k -N 30000 'echo {#}' (30000 inputs)")
    add("-k", "echo", stdin=b"a" * 200000 + b"\n",
        name="-k echo (an input of 200000 bytes)")
    add("-k", "--colsep", ";", "echo", "{2}", "{1}",
        stdin="".join("%s;%s\n" % (a, b) for a, b in
                      zip(HOSTILE, reversed(HOSTILE))).encode())
    # A value too long for a file name: cut to 255 bytes once escaped.
    add("-k", "--results", "out", "echo", ":::", "\u00e9" * 100 + "b/" * 100,
        "x", "\\" * 300, name="--results out echo ::: (values of 400 bytes)")
    add("-k", "--results", "out", "echo", ":::", *[h for h in HOSTILE
                                                  if h not in ("", "--")])
    add("-k", "--joblog", "jl", "echo", ":::", *HOSTILE, joblogs=("jl",))
    add("-k", "--dry-run", "-X", "echo", ":::", *HOSTILE)
    add("-k", "-I", "@", "echo", "<@>", "@.x", ":::", *HOSTILE[:10])
    add("-k", "printf", "'%s\\n'", "{.}", "{/}", "{//}", "{/.}", ":::",
        "a b/c d.e f", "x'y/z\"w.q", "$v/`c`.d", "*/?.[ab]")

    # Replacement strings.
    for rs in ("{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{1}", "{1.}",
               "{1/}", "{1//}", "{1/.}", "{-1}", "{-1.}"):
        add("-k", "echo", rs, ":::", *PATHS)
    add("-k", "echo", "{#}", "{}", "x{}y{.}z", ":::", "a.1", "b.2", "c.3")
    add("-k", "-j1", "echo", "{%}", ":::", "a", "b", "c")
    add("-k", "echo", "{foo}", "{1x}", "{ }", "{.x}", ":::", "a")
    add("-k", "echo", "${#}{}", "${HOME:+x}{}", ":::", "a b")
    add("-k", "echo", "{1}", "{2}", "{3}", ":::", "a", "b", ":::", "1", "2")
    add("-k", "echo", "{2.}", "{1/}", "{-2}", ":::", "d/a.x", ":::", "e/b.y")
    add("-k", "-I", "XX", "echo", "XX", "{}", ":::", "a", "b c")
    add("-k", "-I", "{in}", "echo", "[{in}]", ":::", "a", "b c")
    add("-k", "--er", "EXT", "echo", "EXT", "{.}", ":::", "a.b")
    add("-k", "--bnr", "BN", "--dnr", "DN", "echo", "BN", "DN", ":::", "d/e.f")
    add("-k", "--seqreplace", "SEQ", "echo", "SEQ", ":::", "x", "y")
    # Positional strings exist only for names that start with '{' ({1} from
    # {}, {1x} from -I {x}); -I @ leaves {1} as text, the others work.
    add("-k", "-I", "@", "echo", "@", "{1}", "{}", "{.}", "{/}", "{//}", "{/.}",
        "{#}", "{%}", "{1.}", "{-1}", "{0}", ":::", "a.b")
    add("-k", "-I", "@", "echo", "@", "{1}", "{2}", ":::", "a.b", ":::", "c")
    add("-k", "--er", "E", "echo", "E", "{.}", "{1.}", "{}", ":::", "a.b")
    add("-k", "-I", "{}", "echo", "{}", "{1}", "{.}", ":::", "a.b")
    add("-k", "-I", "{x}", "echo", "{x}", "{1}", "{.}", "{}", "{1x}", "{-1x}",
        ":::", "a.b")
    add("-k", "--bnr", "B", "echo", "B", "{/}", "{}", "{1/}", ":::", "d/a.b")
    add("-k", "--er", "{y}", "echo", "{y}", "{1y}", ":::", "a.b")

    # Input sources.
    add("-k", "echo", ":::", "a", "b", ":::", "1", "2", ":::", "X", "Y")
    add("-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2", "3")
    add("-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2")
    add("-k", "echo", ":::", "a", "b", ":::", "1", "2", ":::+", "x", "y")
    add("-k", "echo", "::::", "list", files={"list": "f 1\nf2\n$x\n"})
    add("-k", "echo", "::::", "list", ":::", "A", "B",
        files={"list": "f1\nf2\n"})
    add("-k", "echo", "::::", "l1", "l2", files={"l1": "a\nb\n", "l2": "1\n2\n"})
    add("-k", "echo", "::::", "l1", "::::+", "l2",
        files={"l1": "a\nb\n", "l2": "1\n2\n"})
    add("-k", "-a", "list", "echo", files={"list": "f 1\nf2\n"})
    add("-k", "-a", "l1", "-a", "l2", "echo",
        files={"l1": "a\nb\n", "l2": "1\n2\n"})
    add("-k", "echo", "x", stdin=b"a\n\nb c\n$HOME\n")
    add("-k", "echo", "x", stdin=b"no newline at end")
    add("-k", "echo", "x", stdin=b"")
    # A NUL byte without -0 becomes \0; the record is kept whole.
    add("-k", "echo", stdin=b"a\0b\nc\0d\0e\nf\n")
    add("-k", "echo", "::::", "nul", files={"nul": "x\0y\nz\n"})
    add("-k", "-a", "nul", "-X", "echo", files={"nul": "x\0y\nz\n"})
    add("-k", "--colsep", " ", "echo", "{2}", "{1}", stdin=b"a\0b c\0d\n")
    add("-k", "-d", ",", "echo", stdin=b"a\0b,c")
    add("-k", "-r", "echo", "x", stdin=b"a\n\nb\n")
    add("-r", "echo", "x", stdin=b"")
    # -r skips records of only white space too, and --pipe -r drops them.
    add("-k", "-r", "echo", "x{}x", stdin=b"a\n  \n\t\n\nb\n \tc \n\r\n\f\n")
    add("-k", "-r", "echo", "x{}x", ":::", "a", " ", "", "\t")
    add("-k", "-r", "-d", ",", "echo", "x{}x", stdin=b"a,  ,\t,,b")
    add("-k", "-r", "-0", "echo", "x{}x", stdin=b"a\0 \0\0")
    add("-k", "-r", "--colsep", ",", "echo", "x{1}x{2}x", stdin=b"a b\n , \n")
    add("-k", "-r", "echo", ":::", "1", "::::", "-", stdin=b"a\n \n")
    add("-k", "--pipe", "-N2", "-r", "cat; echo --",
        stdin=b"a\n  \n\t\n\nb\n\nc\n")
    add("-k", "--pipe", "-r", "cat; echo --", stdin=b"  \n\t\n\n \n")
    add("-k", "--pipe", "-r", "cat; echo --", stdin=b"a\n  ")
    # --pipe -r drops blank lines whatever ends the records (-0, -d).
    add("-k", "--pipe", "-r", "-0", "od -c", stdin=b"a\0\0b\0")
    add("-k", "--pipe", "-r", "-0", "od -c", stdin=b"a\n\nb\0")
    add("-k", "--pipe", "-r", "-d", ",", "od -c", stdin=b"a,,b\n\n  \nc,")
    add("-k", "-d", ",", "echo", stdin=b"a b,c\n,d")
    add("-k", "-d", "\\t", "echo", "[{}]", stdin=b"a\tb c\td")
    add("-k", "-d", ",", "echo", ":::", "a,b", "c")
    add("-k", "--colsep", ",", "echo", "{2}", "{1}", stdin=b"a,b\nc,d,e\n")
    add("-k", "--colsep", "\\t", "echo", "{2}-{1}", stdin=b"a\tb\nc\td\n")
    add("-k", "-C", " +", "echo", "{3}", "{1}", stdin=b"a  b   c\nd e f\n")
    add("-k", "--colsep", ",", "echo", stdin=b"a,b\nc,d\n")
    add("-k", "--colsep", ",", "echo", "{1}", "{2}", "{3}",
        ":::", "a,b", ":::", "c")
    add("-k", "echo", "{}", "::::", "-", stdin=b"s1\ns2\n")
    # Records with fewer columns than others.
    ragged = b"a,b,c\nd\ne,f\n"
    for tmpl in (["echo", "{}"], ["echo"], ["echo", "{-1}", "{3}", "{2}"],
                 ["-X", "echo", "[{}]"], ["--tag", "echo", "x"],
                 ["--results", "r", "echo", "x"], ["-N2", "echo", "{-1}"]):
        add("-k", "--colsep", ",", *tmpl, stdin=ragged)
    # Positions count the inputs a job has: after a short record, the next
    # source's columns (or the next record's, with -N) move up.
    add("-k", "--colsep", ",", "echo", "{1}", "{2}", "{3}", "{4}", "{-1}",
        "{-2}", ":::", "a", "a,b", ":::", "X,Y", "X")
    add("-k", "--colsep", ",", "-N2", "echo", "{2}", "{3}", "{4}", "{-2}",
        stdin=b"d\na,b,c\ne,f\n")
    for srcs in ([":::", ":::", "a"], [":::", "a", ":::"],
                 [":::", "a", ":::", ":::", "b"], ["::::", "empty", ":::", "a"],
                 [":::", ":::+", "a"], [":::", "a", "b", ":::+"],
                 [":::", ":::"], ["::::", "empty"]):
        add("-k", "echo", "[{1},{2},{3}]", *srcs, files={"empty": ""})

    # The input as the command.
    add("-k", ":::", "echo a", "echo b c", "printf '%s\\n' x y")
    add("-k", stdin=b"echo 1\necho 2 | tr 2 3\n")

    # Grouping: -n, -N, -m, -X.
    add("-k", "-n2", "echo", ":::", "a", "b", "c", "d", "e")
    add("-k", "-n", "2", "echo", "{}", "{1}", "{2}", "x", ":::", "a", "b", "c")
    add("-k", "-N2", "echo", "{2}", "{1}", ":::", "a", "b", "c")
    # -N replaces in context, as -X does: the word around {} once per input
    # (-n does not).
    add("-k", "-N2", "echo", "x{}y", "={.}", "{1}z", ":::", "a.1", "b c", "d")
    add("-k", "-n2", "echo", "x{}y", ":::", "a", "b", "c")
    add("-k", "-N0", "echo", "x{}y", "{}", ":::", "a", "b")
    add("-k", "-N3", "echo", ":::", *HOSTILE[:8])
    add("-k", "-N0", "echo", "foo", "{#}", ":::", "a", "b", "c")
    add("-k", "-N0", "echo", "foo", ":::", "a", "b")
    add("-k", "-n0", "echo", "x{}y", ":::", "a", "b")
    add("-k", "-N1", "-n", "2", "echo", ":::", "a", "b", "c")
    add("-k", "-N0", "-n2", "echo", ":::", "a", "b", "c")
    add("-k", "-N2", "-n0", "echo", ":::", "a", "b", "c")
    add("-k", "--pipe", "-N1", "-n2", "cat", stdin=b"1\n2\n3\n")
    add("-k", "-n2", "echo", "{}", ":::", "a", "b", "c", ":::", "1")
    add("-j1", "-X", "echo", "pre{}post", ":::", "a", "b", "c")
    add("-j1", "-m", "echo", "pre{}post", ":::", "a", "b", "c")
    add("-k", "-j3", "-X", "echo", "{}", ":::", *"abcdefghi")
    add("-k", "-j4", "-m", "echo", ":::", *"abcdefghij")
    add("-k", "-j2", "-X", "echo", "<{}>", "{#}", ":::", *HOSTILE[:6])
    add("-j1", "-m", "echo", ":::", "a", "b", ":::", "1", "2")

    # xargs' habits.
    add("-k", "-P", "2", "-n", "1", "echo", stdin=b"a\nb\n")
    add("-k", "-0", "-n", "2", "echo", stdin=b"a\0b\0c\0")
    add("-k", "-I", "{}", "-r", "echo", "<{}>", stdin=b"a\n\nb\n")
    add("-k", "-P2", "-I", "%", "echo", "%", "%", stdin=b"x\ny\n")

    # Output control.
    add("-k", "--tag", "echo", ":::", "a", "b c", ":::", "1")
    add("-k", "--tag", "printf", "l1\\nl2\\n", ":::", "x", "y")
    add("-k", "--tag", "printf", "no-newline", ":::", "x")
    # A carriage return ends a line for the tag too (CRLF text, progress
    # lines redrawn with \r).
    add("-k", "--tag", "printf '%s\\r\\n%s\\rc\\r' {} {}", ":::", "x",
        "y")
    add("-k", "--tagstring", "T{#}", "printf '%s\\rb\\r'", ":::", "x")
    add("--lb", "--tag", "printf 'a\\rb\\r\\nc\\n%s' {}", ":::", "x")
    add("-k", "--tagstring", "{}-x", "echo", "hi", ":::", "a", "b")
    add("-k", "--tagstring", "[{#}:{/}]", "echo", "hi", ":::", "d/a", "e/b")
    # With -X and -N the tag string is replaced in context too.
    add("-k", "-X", "-j1", "--tagstring", "x{}y", "echo", ":::", "a", "b")
    add("-k", "-N2", "--tagstring", "x{.}y {1}", "echo", ":::", "a.1", "b",
        "c")
    # --tagstring expands \t \n \r and octal escapes (GNU parallel's
    # unquote_printf), in the string only, not in the values.
    for t in ("{}\\t", "\\t{}\\n", "\\r|", "\\\\", "\\\\t", "a\\x41\\e\\a",
              "\\101", "\\1", "\\12", "\\0123", "\\8", "\\189", "\\1345"):
        add("-k", "--tagstring", t, "echo", "hi", ":::", "v\\tw", "x")
    # A tag is no shell text: backslashes and quotes are characters, the
    # replacement strings after them replaced.
    for t in ("\\{}", "a\\{}b", "\\{#}", "\\\\\\{}", "it's {}", "$({})",
              "`{}", "#{}", '"{}"', "$'{}'"):
        add("-k", "--tagstring", t, "echo", "hi", ":::", "v", "x y")
    add("--line-buffer", "echo", ":::", "a", "b", "c")
    add("--line-buffer", "--tag", "printf", "'1\\n2\\n'", ":::", "a", "b")
    add("-k", "-v", "echo", ":::", "a", "b c")
    # -v and --dry-run lines are tagged too (each line of the command).
    add("-k", "-v", "--tag", "echo", ":::", "a", "b c")
    add("-k", "-v", "--tagstring", "T{}", "echo {}; echo x", ":::", "a")
    add("-k", "--lb", "-v", "--tag", "echo", ":::", "a", "b")
    add("-k", "-0", "-v", "--tag", "echo {}; echo", stdin=b"a\nb\0c\0")
    add("-k", "--line-buffer", "echo", ":::", "a", "b", "c")
    add("-k", "--lb", "--tag", "printf", "'x\\ny\\n'", ":::", "a", "b")
    add("-u", "-j1", "echo", ":::", "a", "b")
    # -v with -u or --line-buffer: each try's command before its output.
    add("-u", "-v", "-j1", "--retries", "2",
        "echo s{}; sleep 0.2; echo e{}; exit 1", ":::", "a", "b")
    add("--lb", "-v", "--tag", "-j1", "echo s{}; sleep 0.2; echo e{}",
        ":::", "a", "b")
    add("--group", "-k", "echo", ":::", "a", "b")
    add("--shuf", "echo", ":::", *"abcdefgh")
    # The inputs are shuffled before they make jobs: -k prints in {#}
    # order, whatever input each job got.
    add("--shuf", "-k", "echo", "{#}", ":::", *"abcdefgh")
    add("--shuf", "-k", "-n", "3", "echo", "{#}", ":::", *"abcdefgh")
    add("-k", "--delay", "0.05", "echo", ":::", "a", "b", "c")
    add("-k", "--delay", "0.05s", "echo", ":::", "a", "b")
    add("-k", "-j", "+0", "echo", ":::", "a", "b")
    add("-k", "-j", "50%", "echo", ":::", "a", "b")
    add("-k", "-j0", "echo", ":::", "a", "b")
    add("-k", "-j", "-%d" % (os.cpu_count() + 5), "echo", ":::", "a", "b")
    add("-k", "-j", "1%", "echo", ":::", "a", "b")
    add("--keep-order", "--jobs", "3", "echo", ":::", "a", "b")
    add("-k", "--", "echo", ":::", "a", "b")

    # Dry runs.
    add("--dry-run", "rm", "-v", "{}", ":::", *HOSTILE)
    add("--dry-run", "echo", "{.}", "{/}", ":::", *PATHS)
    add("--dry-run", "-X", "-j1", "echo", "x{}y", ":::", "a", "b c")
    add("--dry-run", "-q", "echo", "a b", "{}", ":::", "x y")
    # -q quotes each word whole once its values are in (GNU parallel's
    # way): a word whose value is empty or absent ({n} past the last
    # input, a short record's column) is still an argument, '', except
    # the {} of a job without inputs (-N0), which leaves no word.
    add("-k", "-q", "printf", "%s|\\n", "{2}", "x{3}", "{1}", ":::", "a",
        "b c")
    add("-k", "-q", "-N2", "printf", "%s|\\n", "{2}", "z", ":::", "a", "b",
        "c")
    add("-k", "-q", "--colsep", ",", "printf", "%s|\\n", "{2}", "{-1}",
        ":::", "a,b", "c")
    add("-k", "--dry-run", "-q", "echo", "x{}", "p q{}", "{}{}", "{2}", "{}",
        ":::", "a b", "", "it's", "$x")
    add("-k", "--dry-run", "-q", "-N0", "echo", "x", "{}", "{1}", "y{}",
        ":::", "a")
    add("--dry-run", "-q", "-X", "-j1", "echo", "p q{}r s", "{} {}", ":::",
        "a", "b c")
    add("--dry-run", "-q", "-m", "-j1", "echo", "x{}y", "{1}", ":::", "a",
        "b c")
    add("--dry-run", "--pipe", "-N1", "wc", "-l", stdin=b"1\n2\n")
    add("-k", "--dry-run", "--tag", "echo", ":::", "a", "b c")
    add("-k", "--dry-run", "--tagstring", "T{#}", "echo", ":::", "a")
    add("--dry-run", "--tag", "--pipe", "-N1", "cat", stdin=b"1\n2\n")
    add("-k", "-0", "--dry-run", "--tag", "echo", stdin=b"a\nb\0c\0")

    # Exit status.
    add("exit {}", ":::", "0", "1", "2", "3")
    add("exit {}", ":::", "0", "0")
    add("exit {}", ":::", *["1"] * 120)
    add("exit {}", ":::", *["1"] * 101)
    add("exit {}", ":::", *["1"] * 100)
    add("kill -9 $$", ":::", "1")
    add("-k", "nosuchcommand-cfutures", ":::", "1", "2")
    add("-k", "/nonexistent/prog", ":::", "1")
    add("-k", "sh", "-c", "'echo $0-$1; exit 1'", "x", ":::", "a", "b")
    add("-k", "false", ":::", "a")
    add("-k", "true", ":::", "a")

    # --halt.
    for halt in ("now,fail=1", "soon,fail=1", "now,fail=2", "soon,fail=2",
                 "2", "1", "0", "never", "now,success=1", "soon,success=1",
                 "-1", "-2", "now,done=2", "soon,fail=50%", "now,fail=30%",
                 "now,fail=99%"):
        add("-j1", "--halt", halt, "echo {}; exit {}", ":::",
            "0", "3", "0", "4", "0")
    add("-j1", "--halt-on-error", "now,fail=1", "exit {}", ":::", "0", "5",
        "0")
    add("-j1", "--halt", "now,fail=1", "kill -9 $$", ":::", "1", "2")
    add("-j1", "--halt", "now,fail=1", "--timeout", "0.3", "sleep {}",
        ":::", "5", "0")
    # -k: after a job --halt now killed, nothing more is printed or logged.
    add("-k", "-j3", "--halt", "now,fail=1", "--joblog", "jl",
        "sleep {}; echo {}; [ {} != 0.3 ]", ":::", "2", "0.1", "0.3", "3",
        joblogs=("jl",))
    add("-k", "-j3", "--halt", "now,fail=1", "--joblog", "jl",
        "sleep {}; echo {}; [ {} != 0.3 ]", ":::", "0.1", "0.3", "3",
        joblogs=("jl",))
    # Jobs that --halt now kills are not logged (--resume runs them).
    add("-j2", "--halt", "now,fail=1", "--joblog", "jl",
        "sleep {}; echo {}; exit 1", ":::", "0.1", "3", "4", joblogs=("jl",))

    # --retries: the tries leave their marks in a file.
    add("-j1", "--retries", "3", "echo try >> tries-{}; echo x; exit 1",
        ":::", "a")
    add("-j1", "--retries", "3",
        "echo t >> tries-{}; test $(wc -l < tries-{}) -ge 2", ":::", "a", "b")
    add("-j1", "--retries", "1", "echo t >> tries; exit 1", ":::", "a")

    # --timeout.
    add("-k", "--timeout", "0.5", "sleep {}; echo {}", ":::", "0.1", "3")
    add("-k", "--timeout", "0", "sleep {}; echo {}", ":::", "0.1", "0.3")
    add("-k", "--timeout", "1M", "--delay", "0.1S", "echo", ":::", "a", "b")
    add("-k", "--timeout", "0.5", "--joblog", "jl", "sleep {}; echo {}",
        ":::", "0.1", "3", joblogs=("jl",))

    # --joblog, --resume, --resume-failed.
    add("-k", "--joblog", "jl", "echo {}; exit {}", ":::", "0", "1", "2",
        joblogs=("jl",))
    add("-k", "--joblog", "jl", "kill -{} $$", ":::", "9", "TERM", "0",
        joblogs=("jl",))
    # A SHELL that cannot run is passed over (GNU parallel takes the shell
    # it was started from, cfutures /bin/sh); a PARALLEL_SHELL that cannot
    # is an error (255) before anything runs.
    add("-k", "echo {}", ":::", "a", "b",
        env={"PARALLEL_SHELL": None, "SHELL": "/nonexistent/zsh"},
        name="SHELL=/nonexistent/zsh echo {} ::: a b")
    add("-k", "echo {}", ":::", "a", "b",
        env={"PARALLEL_SHELL": "/nonexistent/sh"},
        name="PARALLEL_SHELL=/nonexistent/sh echo {} ::: a b")
    # The variables each job gets; PARALLEL_TMP names no file (test_cli.c
    # checks that one the job makes there is removed after it).
    add("-k", "-j1", "echo $PARALLEL_SEQ $PARALLEL_JOBSLOT "
        "$PARALLEL_JOBSLOT0; test -e \"$PARALLEL_TMP\" || echo no file; "
        "touch \"$PARALLEL_TMP\"; "
        "test \"$PARALLEL_PID\" -gt 1 && echo pid", ":::", "a", "b")
    add("-k", "--joblog", "jl", "echo", ":::", *HOSTILE[:10],
        joblogs=("jl",))
    # A newline in the command is a NUL in the log: one line per job.
    add("-k", "-0", "--joblog", "jl", "echo {}", stdin=b"a\n5\0b\0c\r\td\0",
        joblogs=("jl",))
    jl = ("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal"
          "\tCommand\n"
          "1\t:\t1.0\t0.1\t0\t2\t0\t0\techo 0; exit 0\n"
          "2\t:\t1.0\t0.1\t0\t2\t1\t0\techo 1; exit 1\n")
    add("-k", "--joblog", "jl", "--resume", "echo {}; exit {}", ":::",
        "0", "1", "0", "0", files={"jl": jl}, joblogs=("jl",))
    add("-k", "--joblog", "jl", "--resume-failed", "echo {}; exit {}", ":::",
        "0", "1", "0", "0", files={"jl": jl}, joblogs=("jl",))
    add("-k", "--joblog", "jl", "--resume", "echo {}", ":::", "a", "b",
        joblogs=("jl",))
    # A log in another format is refused (exit 255); the first line is
    # the header whatever it holds; a line starting with a number marks it.
    for text in ("garbage\nmore\n", "garbage\n", "h\n2\n", "h\n\n",
                 jl + "bad\n"):
        for resume in ("--resume", "--resume-failed"):
            add("-k", "--joblog", "jl", resume, "echo {}", ":::", "0", "1",
                "2", files={"jl": text}, joblogs=("jl",))

    # --results.
    # An empty value is as if the option was not given (and never the
    # root directory).
    add("-k", "--results", "", "echo", ":::", "a", "b")
    add("-k", "--joblog", "", "echo", ":::", "a", "b")
    add("-k", "--tagstring", "", "echo", ":::", "a", "b")
    add("-k", "--tag", "--tagstring", "", "echo", ":::", "a", "b")
    add("-k", "--results", "res", "echo", ":::", "a", "b/c", "d e")
    add("-k", "--results", "res", "echo", ":::", "a", "b", ":::", "1", "2")
    add("-k", "--results", "res/", "sh", "-c", "'echo out; echo err >&2'",
        ":::", "x")
    # -u does not keep the output from the files; -v writes the command at
    # the top of the stdout file, not on the output.
    add("-u", "-j1", "--results", "res", "echo", ":::", "a", "b")
    add("-k", "-v", "--results", "res", "echo {}; echo e >&2", ":::", "a")
    add("-u", "-v", "-j1", "--results", "res", "echo", ":::", "a")

    # --pipe.
    seq = "".join("%d\n" % i for i in range(1, 11)).encode()
    add("-k", "--pipe", "-N2", "wc", "-l", stdin=seq)
    add("-k", "--pipe", "-N3", "cat; echo --", stdin=seq)
    add("-k", "--pipe", "--block", "10", "wc", "-c", stdin=seq)
    add("-k", "--pipe", "--block", "1k", "wc", "-l",
        stdin="".join("%d\n" % i for i in range(1, 2001)).encode())
    add("-k", "--pipe", "-N4", "echo", "{#}", ";", "cat", stdin=seq)
    add("-k", "--pipe", "-N2", "--tag", "cat", stdin=seq)
    add("--pipe", "-N2", "-j1", "cat >/dev/null", stdin=seq)

    # Shell features through the command line.
    add("-k", "echo {} | tr a-z A-Z", ":::", "ab", "c d")
    add("-k", "for i in 1 2; do echo {}$i; done", ":::", "a", "b")
    add("-k", "test -e {} && echo yes || echo no", ":::", "f", "g",
        files={"f": ""})
    add("-k", "X={}; echo $X", ":::", "a b", "$HOME")
    add("-k", "echo", "$PARALLEL_SEQ", ":::", "a", "b")
    add("-k", "cd", "/;", "pwd", ":::", "a")
    add("-k", "echo", ":::", "a\\nb", "c\\tz")
    add("-k", "echo", "-n", ":::", "a", "b")
    add("-k", "echo", "-e", ":::", "a\\nb")
    add("-k", "true --version >/dev/null && echo ok", ":::", "a")
    add("-k", "echo", "~", "#x", ":::", "a")
    add("-k", "printf", "%s-%s\\n", ":::", "a", "b", ":::", "1")
    add("-k", "echo", "a", ";", "echo", "b", ":::", "x")
    # An exported bash function named as a program runs as the function.
    add("-k", "id", ":::", "a", "b c",
        env={"PARALLEL_SHELL": "/bin/bash",
             "BASH_FUNC_id%%": '() {  echo "my id $1"\n}'})
    return c


# ---- running and comparing


def snapshot(d, joblogs):
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs:
            p = os.path.join(root, name)
            out[os.path.relpath(p, d)] = "<dir>"
        for name in files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, d)
            with open(p, "rb") as f:
                data = f.read()
            if rel in joblogs:
                rows = []
                for line in data.decode(errors="replace").splitlines():
                    col = line.split("\t")
                    if len(col) >= 9 and col[0] != "Seq":
                        rows.append((int(col[0]), col[6], col[7],
                                     "\t".join(col[8:])))
                data = sorted(rows)
            out[rel] = data
    return out


def run_one(argv, case, home):
    d = tempfile.mkdtemp(prefix="cfp-")
    try:
        for name, text in case.files.items():
            path = os.path.join(d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        env = dict(os.environ, PARALLEL_SHELL="/bin/sh", LC_ALL="C",
                   HOME=home)
        env.pop("PARALLEL", None)
        env.update(case.env)
        for k in [k for k, v in env.items() if v is None]:
            del env[k]
        try:
            p = subprocess.run(argv + case.args, cwd=d, env=env,
                               input=case.stdin if case.stdin is not None
                               else b"", capture_output=True, timeout=60)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = "timeout", b"", b""
        if not case.ordered:
            out = b"\n".join(sorted(out.split(b"\n")))
        return rc, out, err, snapshot(d, case.joblogs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def gnu_answer(gnu, version, case, home):
    """run_one for GNU parallel, through the cache."""
    cache = os.environ.get("CF_GNU_CACHE") or os.path.join(
        tempfile.gettempdir(), "cfutures-gnu-cache-%d" % os.getuid())
    key = repr((version, case.args, case.stdin, sorted(case.files.items()),
                sorted(case.env.items()), case.ordered, case.joblogs))
    path = os.path.join(cache, hashlib.sha256(key.encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    want = run_one([gnu, "--will-cite"], case, home)
    if want[0] != "timeout" and home.encode() not in repr(want).encode():
        os.makedirs(cache, exist_ok=True)
        tmp = "%s.%d" % (path, os.getpid())
        with open(tmp, "wb") as f:
            pickle.dump(want, f)
        os.replace(tmp, path)
    return want


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cf = os.path.abspath(sys.argv[1])
    verbose = "-v" in sys.argv
    flt = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    gnu = shutil.which("parallel")
    if gnu is None:
        print("SKIP: GNU parallel is not installed (bench/cli/install.sh)")
        return 77
    home = tempfile.mkdtemp(prefix="cfp-home-")
    os.makedirs(os.path.join(home, ".parallel"), exist_ok=True)
    open(os.path.join(home, ".parallel", "will-cite"), "w").close()
    version = subprocess.run([gnu, "--version"], capture_output=True,
                             env=dict(os.environ, HOME=home)).stdout
    version = version.split(b"\n")[0]
    failed = 0
    all_cases = [c for c in cases() if flt is None or flt in c.name]
    for case in all_cases:
        want = gnu_answer(gnu, version, case, home)
        got = run_one([cf, "run"], case, home)
        same = want[0] == got[0] and want[1] == got[1] and want[3] == got[3]
        if not same:
            failed += 1
            print("DIFF: %s" % case.name)
            if want[0] != got[0]:
                print("  exit status: parallel %s, cfutures %s"
                      % (want[0], got[0]))
            if want[1] != got[1]:
                print("  stdout: parallel %r\n          cfutures %r"
                      % (want[1][:600], got[1][:600]))
            if want[3] != got[3]:
                print("  files: parallel %.600r\n         cfutures %.600r"
                      % (want[3], got[3]))
            print("  stderr: cfutures %r" % got[2][:400])
        elif verbose:
            print("same: %s" % case.name)
    shutil.rmtree(home, ignore_errors=True)
    print("%d command lines compared with GNU parallel, %d differ"
          % (len(all_cases), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
