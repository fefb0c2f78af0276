"""The pass manager: named rewrites, registered per op, run by a worklist to a fixed point.

A local rewrite is ``fn(rw, n) -> Tensor | None``: it looks at node ``n`` of the rewriter
``rw`` and returns the node that should replace it (built with the ordinary op functions on
``rw.graph``), or None. The manager swaps the replacement in, merges every consumer that has
become equal to an existing node (CSE after every change), deletes what died, and revisits
what changed. A graph pass (``fn(rw)``), such as fusion, sees the whole graph and makes its
changes through ``rw.replace``.

Rewrites run phase by phase (``PHASES``); a phase runs its own rules on every node, and every
rule of the phases so far on the nodes a change touched, until nothing fires. A rewrite that
raises is a bug and the error reaches the caller; so does a replacement of another shape or
dtype, and a set of rules that keeps firing without end.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from ..errors import GraphError, RewriteError, user_site
from ..graph import LEAF_OPS, Graph, Tensor, freeze
from ..ops import OPS
from ..ops.elementwise import _frozen, _named_expression

PHASES = ("canonicalize", "stabilize", "simplify", "fuse", "merge", "dead_code")
ELEMENTWISE = "<elementwise>"  # registers a rule for every op of the elementwise family
ANY = "<any>"  # registers a rule for every op


@dataclass
class Rewrite:
    name: str
    phase: str
    fn: Callable
    ops: tuple = ()  # op names (elementwise ones match by their expression), ELEMENTWISE, ANY
    is_pass: bool = False
    doc: str = ""


REWRITES: dict[str, Rewrite] = {}
# phase index -> (key -> rules of that phase), built lazily once all ops are registered
_TABLES: dict = {}


def register(rw: Rewrite) -> Rewrite:
    if rw.name in REWRITES:
        raise GraphError(f"rewrite {rw.name!r} is already registered")
    if rw.phase not in PHASES:
        raise GraphError(f"rewrite {rw.name!r}: unknown phase {rw.phase!r}")
    REWRITES[rw.name] = rw
    _TABLES.clear()
    return rw


def rewrite(name: str, phase: str, *ops):
    """Decorator: register ``fn(rw, n)`` as the local rewrite ``name`` for ``ops``."""

    def deco(fn):
        register(Rewrite(name, phase, fn, tuple(ops), False, (fn.__doc__ or "").strip()))
        return fn

    return deco


def graph_pass(name: str, phase: str):
    """Decorator: register ``fn(rw)`` as the whole-graph rewrite ``name`` (it changes the graph
    through ``rw.replace``, which logs each change)."""

    def deco(fn):
        register(Rewrite(name, phase, fn, (), True, (fn.__doc__ or "").strip()))
        return fn

    return deco


# merge and dead-code elimination are part of every change; they are named so they can be
# switched off and counted like the others
register(Rewrite("merge", "merge", None, (), True, "Merge a node into an equal existing one."))
register(Rewrite("dead_code", "dead_code", None, (), True, "Delete nodes no root needs."))


def enabled_rewrites(option) -> frozenset[str]:
    """The names switched on by ``rewrites=``: True, False or {"exclude": [names]}."""
    if option is True:
        return frozenset(REWRITES)
    if option is False or option is None:  # None: as False
        return frozenset()
    if isinstance(option, dict) and set(option) <= {"exclude"}:
        excluded = option.get("exclude", ())
        excluded = [excluded] if isinstance(excluded, str) else excluded
        if not isinstance(excluded, (list, tuple, set, frozenset)):
            raise GraphError(
                f"rewrites={{'exclude': ...}} takes a list of rewrite names, got "
                f"{type(excluded).__name__} ({user_site()})"
            )
        unknown = [n for n in excluded if not isinstance(n, str) or n not in REWRITES]
        if unknown:
            raise GraphError(
                f"unknown rewrite {unknown[0]!r} in rewrites={option!r} ({user_site()}); "
                f"known: {', '.join(sorted(REWRITES))}"
            )
        return frozenset(REWRITES) - set(excluded)
    raise GraphError(
        f"rewrites must be True, False or {{'exclude': [names]}}, got {option!r} ({user_site()})"
    )


def _key_of_op(name: str):
    """An elementwise op without attributes is matched by its expression, so the anonymous
    ``expr`` nodes of derivatives meet the same rules as the named op."""
    spec = OPS.get(name)
    if spec is None or not spec.extra.get("elementwise") or "builder" not in spec.extra:
        return name
    try:
        return _named_expression(name, spec.arity[0], ())
    except TypeError:  # the builder needs attributes (leaky_relu's alpha)
        return name


def _tables() -> dict:
    if not _TABLES:
        for k, phase in enumerate(PHASES):
            table: dict = {}
            for rw in REWRITES.values():
                if rw.phase == phase and not rw.is_pass:
                    for op in rw.ops:
                        key = op if op in (ELEMENTWISE, ANY) else _key_of_op(op)
                        table.setdefault(key, []).append(rw)
            _TABLES[k] = table
    return _TABLES


_ELEMENTWISE: dict[str, bool] = {}  # op name -> whether it is of the elementwise family


# ---- the rewriter -------------------------------------------------------------------------
class Rewriter:
    """A private Graph being rewritten, with what the rules read and how changes are made.

    Facts about nodes are cached per node id (``args``, ``exprs``, ``uniforms``); only the
    arguments of a node ever change, since a rewrite replaces a node and never edits one.
    """

    def __init__(self, graph: Graph, roots: list[int], enabled: frozenset[str]):
        self.graph = graph
        self.enabled = enabled
        self.log: Counter = Counter()
        self.root_count = Counter(roots)
        self.roots = list(roots)
        self.rank = {n: float(n) for n in graph.nx._node}  # scheduling hint for renumbering
        self.keys: dict[int, tuple] = {n: k for k, n in graph._cons.items()}
        self.ordered = True  # increasing id is still a topological order
        self.original = {n: n for n in graph.nx._node}  # node now -> node as given, if kept
        self.arg_lists: dict[int, list[int]] = {}
        self.exprs: dict = {}
        self.uniforms: dict = {}  # filled by match.uniform
        self.queue: deque = deque()
        self.queued: set[int] = set()
        self.dirty: set[int] = set()
        self.fired = 0
        self.limit = 50 * len(graph) + 1000
        self._seq = 0
        self._rules: dict = {}
        self.freed: list[int] = []  # ids the current replacement deleted

    # ---- reading ---------------------------------------------------------------------
    def op(self, n: int) -> str:
        return self.graph.nx._node[n]["op"]

    def attrs(self, n: int) -> dict:
        return self.graph.nx._node[n]["attrs"]

    def shape(self, n: int) -> tuple:
        return self.graph.nx._node[n]["shape"]

    def dtype(self, n: int) -> str:
        return self.graph.nx._node[n]["dtype"]

    def args(self, n: int) -> list[int]:
        """Argument node ids of ``n`` in position order."""
        a = self.arg_lists.get(n)
        if a is None:
            a = self.arg_lists[n] = self.graph.args(n)
        return a

    def _caches(self) -> tuple[dict, ...]:
        return (self.arg_lists, self.exprs, self.uniforms)

    def uses(self, n: int) -> int:
        """How many argument slots (and roots) read ``n``."""
        return sum(len(k) for k in self.graph.nx._succ[n].values()) + self.root_count[n]

    def is_root(self, n: int) -> bool:
        return self.root_count[n] > 0

    def t(self, n: int) -> Tensor:
        return Tensor(self.graph, n)

    def is_elementwise(self, n: int) -> bool:
        op = self.graph.nx._node[n]["op"]
        hit = _ELEMENTWISE.get(op)
        if hit is None:
            hit = _ELEMENTWISE[op] = OPS[op].extra.get("elementwise", False)
        return hit

    def expr(self, n: int):
        """The SymPy expression of an elementwise node over x0..x{k-1}; None for other ops."""
        try:
            return self.exprs[n]
        except KeyError:
            d = self.graph.nx._node[n]
            e = self.exprs[n] = (
                _named_expression(d["op"], len(self.args(n)), _frozen(d["attrs"]))
                if OPS[d["op"]].extra.get("elementwise")
                else None
            )
            return e

    # ---- running ---------------------------------------------------------------------
    def run(self) -> None:
        """Every enabled rewrite, phase by phase, to a fixed point."""
        tables = _tables()
        for k, phase in enumerate(PHASES):
            for rw in REWRITES.values():
                if rw.phase == phase and rw.is_pass and rw.fn is not None:
                    if rw.name in self.enabled:
                        rw.fn(self)  # it logs each change it makes through replace
            if any(tables[k].values()):
                for n in sorted(self.graph.nx._node, key=self.rank.__getitem__):
                    if n not in self.queued:
                        self.queue.append(n)
                        self.queued.add(n)
                self._drain(k)

    def _drain(self, phase: int) -> None:
        nodes = self.graph.nx._node
        queue, queued, dirty = self.queue, self.queued, self.dirty
        while queue:
            n = queue.popleft()
            queued.discard(n)
            if n not in nodes:
                continue
            touched = n in dirty  # touched by a change: every rule so far applies again
            dirty.discard(n)
            for rule in self._rules_for(n, phase, touched):
                if self._try(rule, n):
                    break

    def _rules_for(self, n: int, phase: int, touched: bool) -> list:
        d = self.graph.nx._node[n]
        op = d["op"]
        if OPS[op].extra.get("elementwise"):
            keys = (self.expr(n), op, ELEMENTWISE, ANY)
        else:
            keys = (op, ANY)
        hit = self._rules.get((keys, phase, touched))
        if hit is None:
            tables = _tables()
            hit = [
                rule
                for p in (range(phase + 1) if touched else (phase,))
                for key in keys
                for rule in tables[p].get(key, ())
                if rule.name in self.enabled
            ]
            self._rules[(keys, phase, touched)] = hit
        return hit

    def _try(self, rule: Rewrite, n: int) -> bool:
        mark = self.graph._next_id
        out = rule.fn(self, n)
        if out is None or (isinstance(out, Tensor) and out.node == n):
            if self.graph._next_id != mark:
                self._discard_new(mark)
            return False
        self.replace(n, out, rule.name, mark)
        return True

    def replace(self, n: int, out: Tensor | int, name: str, mark: int) -> None:
        """Replace node ``n`` by ``out``, logged as ``name``; nodes from id ``mark`` on are new."""
        new = out.node if isinstance(out, Tensor) else int(out)
        old_t, new_t = self.graph.type_of(n), self.graph.type_of(new)
        if old_t != new_t:
            raise RewriteError(
                f"rewrite {name!r} replaced {self.graph.describe(n)} by "
                f"{self.graph.describe(new)}: shape/dtype {new_t.shape} {new_t.dtype} differ "
                f"from {old_t.shape} {old_t.dtype}"
            )
        made = self._adopt(mark, n)
        if new == n or any(n in self.args(m) for m in made):
            raise RewriteError(
                f"rewrite {name!r} replaced {self.graph.describe(n)} by "
                f"{self.graph.describe(new)}, which reads the node it replaces"
            )
        self.note(name)
        self.freed = []
        self.swap(n, new)
        if made:
            self._place(made)
        succ = self.graph.nx._succ
        if self.ordered and new not in made and any(c < new for c in succ.get(new, ())):
            self.ordered = False  # n was replaced by an existing node newer than its readers

    def _place(self, made: list[int]) -> None:
        """Give the nodes a replacement made the ids of the nodes it deleted, keeping every
        argument older than its reader; where that fails, ids are renumbered later."""
        nodes, succ = self.graph.nx._node, self.graph.nx._succ
        free = sorted(f for f in self.freed if f not in nodes)
        for m in made:  # creation order: arguments first
            if m not in nodes:
                continue
            i = bisect.bisect_right(free, max(self.args(m), default=-1))
            if i == len(free) or any(c <= free[i] for c in succ[m] if c < m):
                self.ordered = False
                return
            self._relabel(m, free.pop(i))

    def note(self, name: str, times: int = 1) -> None:
        self.log[name] += times
        self.fired += times
        if self.fired > self.limit:
            top = ", ".join(f"{k} x{v}" for k, v in self.log.most_common(4))
            raise RewriteError(
                f"rewrites did not reach a fixed point after {self.fired} changes on a graph of "
                f"{len(self.graph)} nodes; most frequent: {top}"
            )

    def _adopt(self, mark: int, anchor: int) -> list[int]:
        """Nodes made since ``mark``: scheduled near ``anchor``, pointing at its user code."""
        nodes = self.graph.nx._node
        where = nodes[anchor]["where"]
        base = self.rank[anchor] - 0.5
        made = []
        for m in range(mark, self.graph._next_id):
            if m in nodes and m not in self.rank:
                self._seq += 1
                self.rank[m] = base + self._seq * 1e-9
                nodes[m]["where"] = where
                self.key(m)
                self.push(m)
                made.append(m)
        return made

    def _discard_new(self, mark: int) -> None:
        """Remove nodes a rule built before deciding not to fire."""
        g = self.graph
        for m in range(g._next_id - 1, mark - 1, -1):
            if m in g.nx._node and not g.nx._succ[m] and m not in self.rank:
                self._unkey(m)
                for cache in self._caches():
                    cache.pop(m, None)
                g.nx.remove_node(m)

    def push(self, n: int) -> None:
        self.dirty.add(n)
        if n not in self.queued:
            self.queued.add(n)
            self.queue.append(n)

    # ---- changing the graph ------------------------------------------------------------
    def swap(self, old: int, new: int) -> None:
        """Make every reader of ``old`` read ``new``; merge readers that became duplicates."""
        g = self.graph
        succ, pred, cons = g.nx._succ, g.nx._pred, g._cons
        merge = "merge" in self.enabled
        work = [(old, new)]
        while work:
            old, new = work.pop()
            if old == new or old not in succ or new not in succ:
                continue
            for c, keydict in list(succ[old].items()):
                positions = [d["pos"] for d in keydict.values()]
                before = self._unkey(c)
                del succ[old][c]
                del pred[c][old]
                for p in positions:
                    _link(g.nx, new, c, p)
                self.arg_lists.pop(c, None)
                key = (before[0], before[1], tuple(self.args(c)))
                other = cons.get(key)
                self.keys[c] = key
                if other is None:
                    cons[key] = c
                elif other != c and merge:
                    # the newer of two equal nodes goes: readers of the older come first
                    keep, drop = min(c, other), max(c, other)
                    cons[key] = keep
                    work.append((drop, keep))
                    self.note("merge")
                self.push(c)
                for cc in succ[c]:  # patterns two levels up see a new grandchild
                    self.push(cc)
            count = self.root_count.pop(old, 0)
            if count:
                self.root_count[new] += count
                self.roots = [new if r == old else r for r in self.roots]
            self.push(new)
            self.kill(old)

    def kill(self, n: int) -> None:
        """Delete ``n`` and whatever only it needed, if nothing reads it."""
        if "dead_code" not in self.enabled:
            return
        g = self.graph
        succ, pred = g.nx._succ, g.nx._pred
        stack = [n]
        while stack:
            n = stack.pop()
            if n not in succ or succ[n] or self.root_count[n]:
                continue
            args = list(pred[n])
            self._unkey(n)
            d = g.nx._node[n]
            if d["op"] in LEAF_OPS:
                g._names.pop(d.get("name"), None)
            g.nx.remove_node(n)
            for cache in self._caches():
                cache.pop(n, None)
            self.original.pop(n, None)
            self.freed.append(n)
            self.note("dead_code")
            for a in args:
                self.push(a)  # it lost a reader: single-use patterns may now match
                stack.append(a)

    def _relabel(self, m: int, n: int) -> None:
        """Give node ``m`` the free id ``n`` (every argument of m is older than n, every
        reader newer), so increasing ids stay a topological order without renumbering."""
        g = self.graph
        G = g.nx
        G._node[n] = G._node.pop(m)
        G._succ[n] = succ = G._succ.pop(m)
        G._pred[n] = pred = G._pred.pop(m)
        for c in succ:
            G._pred[c][n] = G._pred[c].pop(m)
        for a in pred:
            G._succ[a][n] = G._succ[a].pop(m)
        key = self.keys.pop(m, None)
        if key is not None:
            self.keys[n] = key
            if g._cons.get(key) == m:
                g._cons[key] = n
        for c in succ:  # readers' keys name their arguments
            old = self._unkey(c)
            self.arg_lists.pop(c, None)
            key = (old[0], old[1], tuple(self.args(c)))
            g._cons.setdefault(key, c)
            self.keys[c] = key
        for cache in self._caches():
            if m in cache:
                cache[n] = cache.pop(m)
        self.rank[n] = self.rank.pop(m)
        count = self.root_count.pop(m, 0)
        if count:
            self.root_count[n] += count
            self.roots = [n if r == m else r for r in self.roots]
        self.push(n)

    def _unkey(self, n: int) -> tuple | None:
        """Take ``n`` out of the hash-consing table (before its arguments change); its key."""
        key = self.key(n)
        self.keys.pop(n, None)
        if key is not None and self.graph._cons.get(key) == n:
            del self.graph._cons[key]
        return key

    def key(self, n: int) -> tuple | None:
        """The hash-consing key of ``n`` (None for inputs and variables)."""
        key = self.keys.get(n)
        if key is None:
            d = self.graph.nx._node[n]
            if d["op"] in LEAF_OPS:
                return None
            if d["op"] == "constant":
                key = ("constant", freeze(d["attrs"]))
            else:
                key = (d["op"], freeze(d["attrs"]), tuple(self.args(n)))
            self.keys[n] = key
        return key

    # ---- renumbering -------------------------------------------------------------------
    def compact(self) -> None:
        """Renumber the graph so that increasing ids are a topological order again (nodes no
        root needs are left out)."""
        g = self.graph
        succ, pred, nodes = g.nx._succ, g.nx._pred, g.nx._node
        live = set(nodes)
        if "dead_code" in self.enabled:
            live = set(self.roots)
            stack = list(live)
            while stack:
                for a in pred[stack.pop()]:
                    if a not in live:
                        live.add(a)
                        stack.append(a)
        waiting = {n: len(pred[n]) for n in live}
        ready = [(self.rank[n], n) for n, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        new = Graph()
        G = new.nx
        mapping: dict[int, int] = {}
        while ready:
            _, n = heapq.heappop(ready)
            m = len(mapping)
            mapping[n] = m
            G._node[m] = nodes[n]
            G._succ[m] = {}
            G._pred[m] = {}
            for a, keydict in pred[n].items():
                for d in keydict.values():
                    _link(G, mapping[a], m, d["pos"])
            for c in succ[n]:
                if c in waiting:
                    waiting[c] -= 1
                    if waiting[c] == 0:
                        heapq.heappush(ready, (self.rank[c], c))
        if len(mapping) != len(live):
            raise RewriteError("the rewritten graph has a cycle")
        _settle(G)
        new._next_id = len(mapping)
        new._names = {k: mapping[v] for k, v in g._names.items() if v in mapping}
        keys: dict[int, tuple] = {}
        for n, m in mapping.items():
            key = self.key(n)
            if key is not None:
                if len(key) == 3:
                    key = (key[0], key[1], tuple(mapping[a] for a in key[2]))
                keys[m] = key
                new._cons.setdefault(key, m)
        self.original = {mapping[n]: o for n, o in self.original.items() if n in mapping}
        self.arg_lists = {}
        self.exprs = {mapping[n]: e for n, e in self.exprs.items() if n in mapping}
        self.uniforms = {mapping[n]: u for n, u in self.uniforms.items() if n in mapping}
        self.graph = new
        self.keys = keys
        self.roots = [mapping[r] for r in self.roots]
        self.root_count = Counter(self.roots)
        self.rank = {m: float(m) for m in mapping.values()}
        self.ordered = True
        self.queue.clear()
        self.queued.clear()
        self.dirty.clear()

    def finish(self) -> None:
        """Leave the graph with increasing ids in topological order, dead nodes removed."""
        if not self.ordered:
            self.compact()
        _settle(self.graph.nx)


def _link(G: nx.MultiDiGraph, a: int, c: int, pos: int) -> None:
    """Add the edge a -> c carrying ``pos`` (straight into the adjacency dicts: hot path)."""
    keydict = G._succ[a].get(c)
    if keydict is None:
        keydict = {}
        G._succ[a][c] = keydict
        G._pred[c][a] = keydict
    k = len(keydict)
    while k in keydict:
        k += 1
    keydict[k] = {"pos": pos}


def _settle(G: nx.MultiDiGraph) -> None:
    """Tell networkx its adjacency changed behind its back (drops its cached views)."""
    clear = getattr(nx, "_clear_cache", None)
    if clear is not None:
        clear(G)
