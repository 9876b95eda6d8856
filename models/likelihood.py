"""Per-persona likelihood of each evidence token: Dirichlet-smoothed counts, the catalog as prior.

For a token of slot ``s`` with value ``v`` (see ``models.tokens``) and persona ``c``:

    P_c(v) = (n_c(v) + A · q_c(v)) / (N_c(s) + A)                    categorical slots
    q_c(v) = b(v) · exp(r_c(v)) / Σ_v' b(v') · exp(r_c(v'))           the catalog's prior

* ``n_c(v)`` are the (label-weighted) counts of labelled visitors' tokens, ``A`` the prior
  strength (pseudo-counts), ``r_c(v)`` the summed weight of the linking rules that name one
  of the token's features, ``b(v)`` the pooled frequency of the value (add-one; uniform over
  the known values before any label). With no labels ``P_c = q_c``: the rules decide,
  read as "persona c sees value v exp(r) times more often than others". Conjunction rules
  over features of two different slots (e.g. page and channel) are not represented.
* Pages are a Markov chain per persona: the next page given the previous one (or the start
  of a session) backs off to the persona's page frequencies ``U_c`` with strength ``B``:
  ``P_c(v | u) = (n_c(u → v) + B · U_c(v)) / (n_c(u → ·) + B)``, and ``U_c`` is a categorical
  slot as above. Independent pages (naive Bayes) are the special case where every row of
  the chain equals ``U_c``.
* Dwell bins have a second candidate prior: each persona's discretised log-normal fitted to
  its bin counts (``dwell_fit``), with its own strength grid. Which prior, and how strong, is
  chosen by the same prequential score, so a world whose dwell times are not log-normal keeps
  the bins (a fitted 2-parameter shape needs far fewer labels than 17 free bins when it holds).
* The log-likelihoods are scaled by a temperature ``theta`` learned online from the labels
  (progressive log loss, RMSprop steps, averaged over the recent ones): evidence that is
  correlated or misspecified in a world gets ``theta < 1``, instead of making the posterior
  overconfident. (One temperature per slot was measured too: on the simulated worlds its
  noise cost more than it gained.)

Pure, count-based and incremental: learning one labelled visitor adds its token counts.
River has no Dirichlet-multinomial with informative per-class priors; these closed-form
counts are exact, O(1) per token and serialise to plain JSON.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

from models.catalog import CHANNELS, TOUCH_ACTIONS, TOUCH_CHANNELS, Catalog
from models.enrich import region_of
from models.rules import RulePrior
from models.snapshot import SnapshotError
from models.tokens import (
    CODES,
    DWELL_BINS,
    DWELL_EDGES_S,
    SLOTS,
    START,
    TYPE_CODES,
    VISITOR_SLOTS,
    code,
    dwell_bucket_of_bin,
    split_codes,
    touch_name,
)

CACHE_SIZE = 50_000
THETA_RATE = 0.005
RULE_SCALE = 0.35  # catalog weights are guesses, not calibrated log-odds: about a third
POLYA_UNTIL = 500.0  # persona counts of a context from which the plug-in value is used
GRID_A = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # prior strengths tried, per slot
GRID_B = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 1e6)  # page backoffs tried
# strengths tried for the dwell bins' log-normal prior (1e6: the parametric fit alone)
GRID_D = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 1e4, 1e6)
DWELL_FIT_PSEUDO = 10.0  # pseudo-counts of the catalog prior in each persona's dwell fit
_LOG_EDGES = tuple(math.log(e * 1000.0) for e in DWELL_EDGES_S)
_WIDTH = sum(b - a for a, b in itertools.pairwise(_LOG_EDGES)) / (len(_LOG_EDGES) - 1)
_SHEPPARD = _WIDTH**2 / 12  # a bin's width's share in the variance of binned values
_DWELL_INDEX = {code(b): b for b in range(DWELL_BINS)}
# log-ms centre of each dwell bin (the open-ended first and last bins: half a unit outside)
_DWELL_CENTRES = (
    _LOG_EDGES[0] - 0.5,
    *((a + b) / 2 for a, b in itertools.pairwise(_LOG_EDGES)),
    _LOG_EDGES[-1] + 0.5,
)
THETA_DECAY = 0.99
THETA_AVERAGE = 0.005  # the temperature used averages the last ~200 steps
THETA_BOUNDS = (0.05, 2.0)
TOUCH_TO_CHANNEL = {c: c for c in ("paid_search", "display", "social", "email")}
_TYPE_NAMES = {v: k for k, v in TYPE_CODES.items()}
_MISSING: Any = object()


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _hour_bucket(h: int) -> str:
    return "night" if h < 6 else "morning" if h < 12 else "afternoon" if h < 18 else "evening"


class TokenModel:
    def __init__(
        self, catalog: Catalog, prior_strength: float = 10.0, backoff: float = 10.0
    ) -> None:
        self.personas = catalog.persona_ids
        self.k = len(self.personas)
        self.prior_strength = prior_strength
        self.backoff = backoff
        self.rules = RulePrior(catalog)
        pages = list(dict.fromkeys(r.category for r in catalog.page_categories))
        self.pages = [*pages, *(["other"] if "other" not in pages else [])]
        self.counts: dict[str, list[float]] = {}
        self.totals: dict[str, list[float]] = {}
        self.vocab: dict[str, set[str]] = {s: set() for s in SLOTS}
        self.label_weight = [0.0] * self.k
        self.n_labels = 0
        self.soft_weight = 0.0  # unlabelled visitors' weight added by add_soft
        self.temperature = 1.0  # what scoring uses: the running average of theta_step
        self.theta_step = 1.0
        self.g2 = 0.0
        # prequential log-likelihood of labelled visitors' tokens under each grid value
        self.a_score = {s: [0.0] * len(GRID_A) for s in SLOTS}
        self.b_score = [0.0] * len(GRID_B)
        self.a = dict.fromkeys(SLOTS, prior_strength)
        # dwell: the bins' prior is either the catalog's (strength a["d"]) or each persona's
        # discretised log-normal fit (strength dwell_strength, 0 = not chosen)
        self.d_score = [0.0] * len(GRID_D)
        self.dwell_strength = 0.0
        # page stickiness per persona: self-transitions seen, and expected from U_c
        self.stay_seen = [0.0] * self.k
        self.stay_expected = [0.0] * self.k
        self.moves = [0.0] * self.k
        self.known = self._known_values()
        self._cache: dict[str, list[float]] = {}
        self._raw: dict[str, list[float]] = {}
        self._nd: dict[str, tuple[list[float], list[float], str]] = {}
        self._late: set[str] = set()  # tokens past POLYA_UNTIL: the cached value is exact
        # token -> (num, den, context) while Polya-scored, None once the plug-in value is used
        self._polya: dict[str, tuple[list[float], list[float], str] | None] = {}
        self._ctx_keys: dict[str, tuple[tuple[str, ...], tuple[int, ...]] | None] = {}
        self._repeats: dict[tuple[str, int, int], list[float]] = {}  # (token, m_v, m) -> Polya
        self._log_z: dict[str, list[float]] = {}
        self._dwell_fit: list[list[float]] | None = None
        self._pooled_den: dict[str, float] = {}
        self._rules_of: dict[str, list[float]] = {}
        self._base: list[float] | None = None

    def _known_values(self) -> dict[str, list[str]]:
        return {
            "u": [],
            "g": [],
            "h": [CODES[h] for h in range(24)],
            "w": ["0", "1"],
            "c": [CODES[i] for i in range(len(CHANNELS))],
            "p": [code(i) for i in range(len(self.pages))],
            "d": [code(b) for b in range(DWELL_BINS)],
            "t": [
                CODES[i] + CODES[j]
                for i in range(len(TOUCH_CHANNELS))
                for j in range(len(TOUCH_ACTIONS))
            ],
            "f": [],
            "y": list(TYPE_CODES.values()),
        }

    # -- what a token means to the catalog's rules -------------------------------------
    def features_of(self, slot: str, value: str) -> dict[str, str]:
        if slot == "u":
            device, os_family, browser = [*value.split("/"), "", "", ""][:3]
            return {"device": device, "os": os_family, "browser": browser}
        if slot == "g":
            return {"country": value, "region": region_of(value) or "other"}
        if slot == "h":
            return {"hour": _hour_bucket(CODES.index(value))}
        if slot == "w":
            return {"day": "weekend" if value == "1" else "weekday"}
        if slot == "c":
            return {"channel": CHANNELS[CODES.index(value)] if value in CODES else "other"}
        if slot == "p":
            (i,) = split_codes(value)
            return {"page": self.pages[i], "type": "page_view"}
        if slot == "d":
            (b,) = split_codes(value)
            return {"dwell": dwell_bucket_of_bin(b)}
        if slot == "t":
            touch = touch_name(value)
            channel, _, action = touch.partition(":")
            return {
                "touch": touch,
                "action": action,
                "channel": TOUCH_TO_CHANNEL.get(channel, "other"),
                "type": "touchpoint",
            }
        if slot == "y":
            return {"type": _TYPE_NAMES.get(value, "other")}
        return {}

    # -- counts ----------------------------------------------------------------------------
    @staticmethod
    def parts(token: str) -> tuple[str, str, str]:
        """(slot, context key, value): a page token ``p<prev><cur>`` has context ``p<prev>``."""
        slot = token[0]
        if slot == "p":
            codes = split_codes(token[1:])
            prev = START if codes[0] < 0 else code(codes[0])
            return slot, "p" + prev, code(codes[1])
        return slot, slot, token[1:]

    def _count(self, key: str) -> list[float]:
        return self.counts.get(key) or [0.0] * self.k

    def _total(self, key: str) -> list[float]:
        return self.totals.get(key) or [0.0] * self.k

    def _pooled(self, slot: str, value: str) -> float:
        """b(v): pooled add-one frequency of a value among the slot's known and seen values."""
        key = ("P" if slot == "p" else slot) + value
        den = self._pooled_den.get(slot)
        if den is None:
            vocab = len(set(self.known[slot]) | self.vocab[slot]) + 1
            den = sum(self._total("P" if slot == "p" else slot)) + vocab
            self._pooled_den[slot] = den
        return (sum(self._count(key)) + 1.0) / den

    def _rule_scores(self, slot: str, value: str) -> list[float]:
        """The linking rules' summed weight per persona for a token (fixed for a catalog)."""
        key = slot + value
        hit = self._rules_of.get(key)
        if hit is None:
            hit = self.rules.scores(self.features_of(slot, value))
            if len(self._rules_of) >= CACHE_SIZE:
                self._rules_of.clear()
            self._rules_of[key] = hit
        return hit

    def _log_norm(self, slot: str) -> list[float]:
        hit = self._log_z.get(slot)
        if hit is not None:
            return hit
        values = list(dict.fromkeys([*self.known[slot], *sorted(self.vocab[slot])]))
        vocab = len(values) + 1
        total = sum(self._total("P" if slot == "p" else slot)) + vocab
        z = [1.0 / total] * self.k  # the unseen values' mass (no rule names them)
        for v in values:
            b = self._pooled(slot, v)
            for c, r in enumerate(self._rule_scores(slot, v)):
                z[c] += b * math.exp(RULE_SCALE * r)
        out = [math.log(x) for x in z]
        self._log_z[slot] = out
        return out

    def _prior(self, slot: str, value: str) -> list[float]:
        """q_c(v) for every persona."""
        b = self._pooled(slot, value)
        r = self._rule_scores(slot, value)
        return [
            b * math.exp(RULE_SCALE * s - lz) for s, lz in zip(r, self._log_norm(slot), strict=True)
        ]

    def dwell_fit(self) -> list[list[float]]:
        """Per persona, the dwell bins' probabilities under a log-normal dwell time fitted to
        the persona's bin counts plus DWELL_FIT_PSEUDO pseudo-counts of the catalog prior
        (moments of log dwell over the bin centres, Sheppard-corrected). Dwell times are
        roughly log-normal on real sites; whether this prior is used, and how strongly, is
        chosen from the labels (``select``), so a world where it is wrong keeps the bins."""
        if self._dwell_fit is not None:
            return self._dwell_fit
        k, bins = self.k, range(DWELL_BINS)
        weights = [[0.0] * DWELL_BINS for _ in range(k)]
        tot = self._total("d")
        for b in bins:
            value = code(b)
            n, q = self._count("d" + value), self._prior("d", value)
            for c in range(k):
                weights[c][b] = (n[c] + DWELL_FIT_PSEUDO * q[c]) / (tot[c] + DWELL_FIT_PSEUDO)
        out = []
        cdf = _normal_cdf
        for w in weights:
            total = sum(w)
            mu = sum(x * y for x, y in zip(w, _DWELL_CENTRES, strict=True)) / total
            var = sum(x * (y - mu) ** 2 for x, y in zip(w, _DWELL_CENTRES, strict=True)) / total
            sd = math.sqrt(max(var - _SHEPPARD, 0.01))
            cuts = [0.0, *(cdf((e - mu) / sd) for e in _LOG_EDGES), 1.0]
            probs = [max(b - a, 0.0) + 1e-9 for a, b in itertools.pairwise(cuts)]
            z = sum(probs)
            out.append([x / z for x in probs])
        self._dwell_fit = out
        return out

    def _categorical(self, slot: str, key: str, value: str, a: float | None = None) -> list[float]:
        a = self.a[slot] if a is None else a
        q = self._prior(slot, value)
        n, tot = self._count(key), self._total("P" if slot == "p" else slot)
        return [(n[c] + a * q[c]) / (tot[c] + a) for c in range(self.k)]

    def stickiness(self) -> list[float]:
        """s_c: the share of page moves that stay on the same category beyond what the
        persona's page frequencies explain (visitors reading one section in a row)."""
        return [
            min(max((seen - exp) / (moves - exp + 1.0), 0.0), 0.95)
            for seen, exp, moves in zip(self.stay_seen, self.stay_expected, self.moves, strict=True)
        ]

    def _backoff_target(self, context: str, value: str) -> list[float]:
        """What a page transition backs off to: ``s_c 1[v = u] + (1 - s_c) U_c(v)``."""
        unigram = self._categorical("p", "P" + value, value)
        if context == "p" + START:
            return unigram
        same = 1.0 if context[1:] == value else 0.0
        return [s * same + (1 - s) * u for s, u in zip(self.stickiness(), unigram, strict=True)]

    def _num_den(self, token: str) -> tuple[list[float], list[float], str]:
        """P_c(token) = num_c / den_c, and the prefix of the tokens sharing its denominator."""
        hit = self._nd.get(token)
        if hit is not None:
            return hit
        slot, context, value = self.parts(token)
        if slot == "p":
            target = self._backoff_target(context, value)
            b = self.backoff
            n, tot = self._count(token), self._total(context)
            num = [n[c] + b * target[c] for c in range(self.k)]
            den = [tot[c] + b for c in range(self.k)]
        elif slot == "d" and self.dwell_strength and value in _DWELL_INDEX:
            a = self.dwell_strength
            b = _DWELL_INDEX[value]
            fit = self.dwell_fit()
            q = [fit[c][b] for c in range(self.k)]
            n, tot = self._count(token), self._total(slot)
            num = [n[c] + a * q[c] for c in range(self.k)]
            den = [tot[c] + a for c in range(self.k)]
        else:
            a = self.a[slot]
            q = self._prior(slot, value)
            n, tot = self._count(token), self._total(slot)
            num = [n[c] + a * q[c] for c in range(self.k)]
            den = [tot[c] + a for c in range(self.k)]
        out = (num, den, context)
        if len(self._nd) >= CACHE_SIZE:
            self._nd.clear()
            self._polya.clear()
        self._nd[token] = out
        return out

    def log_proba(self, token: str) -> list[float]:
        """log P_c(token) for every persona (no temperature)."""
        hit = self._raw.get(token)
        if hit is not None:
            return hit
        num, den, _ = self._num_den(token)
        out = [math.log(x / d) if x > 0 else -50.0 for x, d in zip(num, den, strict=True)]
        if len(self._raw) >= CACHE_SIZE:
            self._raw.clear()
        self._raw[token] = out
        return out

    @staticmethod
    def context_totals(seen: Mapping[str, int]) -> dict[str, int]:
        """How many of a visitor's tokens share each context (the Polya ``m``), in one pass."""
        out: dict[str, int] = {}
        get = out.get
        for t, n in seen.items():
            if t[:1] == "p":
                key = t[:2]
                if key[1:] == "_":  # a long page code ``_i_``
                    end = t.find("_", 2) + 1
                    key = t[:end] if end > 0 else t
            else:
                key = t[:1]
            out[key] = get(key, 0) + n
        return out

    def visitor_evidence(
        self, token: str, seen: Mapping[str, int], totals: dict[str, int] | None = None
    ) -> list[float] | None:
        """theta · log of the Dirichlet-compound (Polya) predictive of a token given the
        visitor's own earlier tokens ``seen``: ``(num_c + m_v) / (den_c + m)``. While a
        persona has few labelled observations of the context, a visitor repeating itself is
        evidence about *its* habits more than about the persona, so repeats count less (the
        rules alone cannot run away). None when the counts are large enough for the cached
        plug-in value (the correction is then below ``POLYA_UNTIL``'s share). ``totals``:
        :meth:`context_totals` of ``seen``, filled on first use when an empty dict is given
        (one pass over the visitor's counts per event instead of one per token)."""
        if token in self._late:
            return None
        num, den, context = self._num_den(token)
        if min(den) >= POLYA_UNTIL or token[0] in VISITOR_SLOTS:
            self._late.add(token)
            return None
        m_v = seen.get(token, 0)
        if totals is None:
            totals = self.context_totals(seen)
        elif not totals:
            totals.update(self.context_totals(seen) or {"": 0})
        m = totals.get(context, 0)
        if not m:
            return None
        theta = self.temperature
        return [
            theta * math.log((x + m_v) / (d + m)) if x + m_v > 0 else -50.0
            for x, d in zip(num, den, strict=True)
        ]

    def _polya_entry(self, token: str) -> tuple[list[float], list[float], str] | None:
        """``(num, den, context)`` of a token still scored by the Polya predictive, or None
        when the cached plug-in value is exact enough (cached until the next ``learn``)."""
        num, den, context = self._num_den(token)
        out = None if min(den) >= POLYA_UNTIL or token[0] in VISITOR_SLOTS else (num, den, context)
        if len(self._polya) >= CACHE_SIZE:
            self._polya.clear()
        self._polya[token] = out
        return out

    def _context_keys(self, context: str) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """Every token the mapper can emit in a context (with as many zeros), or None when
        that set is open (feedback scores; visitor slots are never Polya-scored)."""
        if context[:1] == "p":
            values = [code(i) for i in range(len(self.pages))]
        elif context in ("h", "w", "d", "t", "y", "c"):
            values = [*self.known[context], *(["_"] if context == "c" else [])]
        else:
            values = None
        out = None if values is None else (tuple(context + v for v in values), (0,) * len(values))
        self._ctx_keys[context] = out
        return out

    def vectors(self, tokens: list[str], seen: Mapping[str, int]) -> list[list[float]]:
        """What each of an event's tokens adds to the visitor's log-likelihoods: the cached
        ``evidence`` or, while the counts are few, the Polya predictive given the visitor's
        earlier tokens ``seen`` (as :meth:`visitor_evidence`, in one call per event)."""
        cache, polya, ctx_keys, repeats = self._cache, self._polya, self._ctx_keys, self._repeats
        out: list[list[float]] = []
        totals: dict[str, int] | None = None
        log = math.log
        for token in tokens:
            entry = polya.get(token, _MISSING)
            if entry is _MISSING:
                entry = self._polya_entry(token)
            if entry is not None:
                num, den, context = entry
                keys = ctx_keys.get(context, _MISSING)
                if keys is _MISSING:
                    keys = self._context_keys(context)
                if keys is not None:  # the few tokens the context can have: look them up
                    m = sum(map(seen.get, keys[0], keys[1]))
                else:
                    if totals is None:
                        totals = self.context_totals(seen)
                    m = totals.get(context, 0)
                if m:
                    key = (token, seen.get(token, 0), m)
                    vector = repeats.get(key)
                    if vector is None:
                        m_v, theta = key[1], self.temperature
                        vector = [
                            theta * log((x + m_v) / (d + m)) if x + m_v > 0 else -50.0
                            for x, d in zip(num, den, strict=True)
                        ]
                        if len(repeats) >= CACHE_SIZE:
                            repeats.clear()
                        repeats[key] = vector
                    out.append(vector)
                    continue
            hit = cache.get(token)
            out.append(hit if hit is not None else self.evidence(token))
        return out

    def evidence(self, token: str) -> list[float]:
        """theta · log P_c(token): what one token adds to a visitor's log-likelihoods."""
        hit = self._cache.get(token)
        if hit is not None:
            return hit
        theta = self.temperature
        out = [theta * v for v in self.log_proba(token)]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = out
        return out

    def log_base(self) -> list[float]:
        """log b(c): the persona base rate, add-one label frequencies."""
        if self._base is None:
            total = sum(self.label_weight) + self.k
            self._base = [math.log((w + 1.0) / total) for w in self.label_weight]
        return self._base

    # -- learning --------------------------------------------------------------------------
    def slot_log_likelihoods(self, tokens: Mapping[str, Any]) -> dict[str, list[float]]:
        """Per slot, the summed log P_c of a visitor's token counts under the current model."""
        out: dict[str, list[float]] = {}
        for token, n in tokens.items():
            if not (isinstance(n, int | float) and n > 0 and token and token[0] in self.a):
                continue
            try:
                lp = self.log_proba(token)
            except (ValueError, IndexError):
                continue
            acc = out.setdefault(token[0], [0.0] * self.k)
            for c in range(self.k):
                acc[c] += n * lp[c]
        return out

    def _learnable(self, tokens: Mapping[str, Any]) -> Iterator[tuple[str, Any, str, str, str]]:
        """``(token, count, slot, context key, value)`` of a visitor's well-formed tokens
        with a positive count; anything else in the counts is skipped."""
        for token, n in tokens.items():
            if not (isinstance(n, int | float) and n > 0 and token and token[0] in self.a):
                continue
            try:
                slot, context, value = self.parts(token)
            except (ValueError, IndexError):
                continue
            yield token, n, slot, context, value

    def fit_gain(self, tokens: Mapping[str, Any]) -> float | None:
        """How much better the best persona explains a visitor's tokens than the personas'
        pooled counts do: the mean over its tokens of ``log P_best - log P_pooled`` (nats;
        untempered). Visitors of a persona the catalog lacks score low: no persona's
        likelihood fits them better than the population's. None without usable tokens."""
        ll = [0.0] * self.k
        pooled = total = 0.0
        sizes: dict[str, int] = {}  # values a slot can take (pages: the catalog's)
        for token, n, slot, context, _ in self._learnable(tokens):
            try:
                lp = self.log_proba(token)
            except (ValueError, IndexError):
                continue
            values = sizes.get(slot)
            if values is None:
                values = sizes[slot] = (
                    len(self.pages)
                    if slot == "p"
                    else len(set(self.known[slot]) | self.vocab[slot])
                )
            seen = sum(self._count(token))
            pooled += n * math.log((seen + 1.0) / (sum(self._total(context)) + values + 1.0))
            for c in range(self.k):
                ll[c] += n * lp[c]
            total += n
        return (max(ll) - pooled) / total if total else None

    def predict(self, slot_ll: Mapping[str, list[float]]) -> list[float]:
        logits = list(self.log_base())
        for ll in slot_ll.values():
            for c in range(self.k):
                logits[c] += self.temperature * ll[c]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def fit_temperature(
        self, slot_ll: Mapping[str, list[float]], proba: list[float], truth: int, weight: float
    ) -> None:
        """One RMSprop step on the log loss of a labelled visitor for the temperature."""
        total = [sum(ll[c] for ll in slot_ll.values()) for c in range(self.k)]
        g = weight * sum((proba[c] - (c == truth)) * total[c] for c in range(self.k))
        self.g2 = THETA_DECAY * self.g2 + (1 - THETA_DECAY) * g * g
        theta = self.theta_step - THETA_RATE * g / math.sqrt(self.g2 + 1e-9)
        self.theta_step = min(max(theta, THETA_BOUNDS[0]), THETA_BOUNDS[1])
        # Score with the average of the recent iterates (Polyak): the steps' noise averages out.
        self.temperature += THETA_AVERAGE * (self.theta_step - self.temperature)

    def select(self, tokens: Mapping[str, Any], truth: int, weight: float) -> None:
        """Empirical Bayes, online: score every prior strength (per slot) and page backoff
        by the log-likelihood of this labelled visitor's tokens *before* learning them, and
        use the best so far. Call before :meth:`add`."""
        for token, n, slot, context, value in self._learnable(tokens):
            w = weight * float(n)
            key, tot_key = ("P" + value, "P") if slot == "p" else (token, slot)
            q = self._prior(slot, value)[truth]
            n_c, tot = self._count(key)[truth], self._total(tot_key)[truth]
            scores = self.a_score[slot]
            for i, a in enumerate(GRID_A):
                scores[i] += w * math.log((n_c + a * q) / (tot + a))
            if slot == "d" and value in _DWELL_INDEX:
                q = self.dwell_fit()[truth][_DWELL_INDEX[value]]
                for i, a in enumerate(GRID_D):
                    self.d_score[i] += w * math.log((n_c + a * q) / (tot + a))
            if slot == "p":
                u = self._backoff_target(context, value)[truth]
                n_t, tot_t = self._count(token)[truth], self._total(context)[truth]
                for i, b in enumerate(GRID_B):
                    self.b_score[i] += w * math.log((n_t + b * u) / (tot_t + b))
        for slot, scores in self.a_score.items():
            if any(scores):
                self.a[slot] = GRID_A[max(range(len(GRID_A)), key=scores.__getitem__)]
        if any(self.b_score):
            self.backoff = GRID_B[max(range(len(GRID_B)), key=self.b_score.__getitem__)]
        best_d = max(range(len(GRID_D)), key=self.d_score.__getitem__)
        use = any(self.d_score) and self.d_score[best_d] > max(self.a_score["d"])
        self.dwell_strength = GRID_D[best_d] if use else 0.0

    def add(self, tokens: Mapping[str, Any], truth: int, weight: float) -> None:
        """Add a labelled visitor's token counts (weighted) to persona ``truth``."""
        self._add_counts(tokens, [(truth, weight)])
        self.label_weight[truth] += weight
        self.n_labels += 1
        self.clear_cache()

    def add_soft(self, tokens: Mapping[str, Any], weights: list[float]) -> None:
        """Add an unlabelled visitor's token counts to each persona ``c`` with weight
        ``weights[c]`` (its posterior share times the unlabelled weight): one online EM
        step. Negative weights take back an earlier contribution (a count never goes below
        zero). The labels' base rate, label count, prior-strength scores and temperature
        are left alone: they are the labels' alone."""
        self._add_counts(tokens, [(c, w) for c, w in enumerate(weights) if w])
        self.soft_weight = max(self.soft_weight + sum(weights), 0.0)
        self.clear_cache()

    def _add_counts(self, tokens: Mapping[str, Any], weights: list[tuple[int, float]]) -> None:
        """Add the token counts to each ``(persona, weight)`` of ``weights`` in one pass."""
        k = self.k
        for token, n, slot, context, value in self._learnable(tokens):
            keys = [(token, context)]
            if slot == "p":
                keys.append(("P" + value, "P"))
                if context != "p" + START:
                    prev = context[1:]
                    stays = float(prev == value)
                    unigram = self._categorical("p", "P" + prev, prev)
                    for c, weight in weights:
                        w = weight * float(n)
                        self.moves[c] = max(self.moves[c] + w, 0.0)
                        self.stay_seen[c] = max(self.stay_seen[c] + w * stays, 0.0)
                        self.stay_expected[c] = max(self.stay_expected[c] + w * unigram[c], 0.0)
            for key, ctx in keys:
                row = self.counts.setdefault(key, [0.0] * k)
                total = self.totals.setdefault(ctx, [0.0] * k)
                for c, weight in weights:
                    d = max(weight * float(n), -row[c])  # a removal never goes below zero
                    row[c] += d
                    total[c] += d
            self.vocab[slot].add(value)
            self._pooled_den.clear()  # the stickiness above reads the counts as they grow

    def clear_cache(self) -> None:
        self._cache.clear()
        self._raw.clear()
        self._nd.clear()
        self._late.clear()
        self._polya.clear()
        self._repeats.clear()
        self._log_z.clear()
        self._dwell_fit = None
        self._pooled_den.clear()
        self._base = None

    # -- snapshots ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "prior_strength": self.prior_strength,
            "backoff": self.backoff,
            "pages": self.pages,
            "counts": {t: [round(x, 6) for x in v] for t, v in self.counts.items()},
            "label_weight": self.label_weight,
            "n_labels": self.n_labels,
            "soft_weight": round(self.soft_weight, 6),
            "temperature": self.temperature,
            "theta_step": self.theta_step,
            "g2": self.g2,
            "a": self.a,
            "a_score": self.a_score,
            "b_score": self.b_score,
            "d_score": self.d_score,
            "dwell_strength": self.dwell_strength,
            "stay": [self.stay_seen, self.stay_expected, self.moves],
        }

    @classmethod
    def from_dict(cls, doc: Any, catalog: Catalog) -> TokenModel:
        if not isinstance(doc, dict):
            raise SnapshotError("token model must be an object")
        try:
            out = cls(catalog, float(doc["prior_strength"]), float(doc["backoff"]))
            if doc["pages"] != out.pages:
                raise SnapshotError("snapshot was trained on different page categories")
            weights = [float(x) for x in doc["label_weight"]]
            temperature, g2 = float(doc["temperature"]), float(doc["g2"])
            theta_step = float(doc["theta_step"])
            n_labels = int(doc["n_labels"])
            soft_weight = float(doc.get("soft_weight", 0.0))
            a = {s: float(doc["a"][s]) for s in SLOTS}
            a_score = {s: [float(x) for x in doc["a_score"][s]] for s in SLOTS}
            b_score = [float(x) for x in doc["b_score"]]
            # Snapshots from before the dwell fit: the fit starts level with the best bins
            # prior and has to win on new labels.
            d_score = [float(x) for x in doc.get("d_score") or [max(a_score["d"])] * len(GRID_D)]
            dwell_strength = float(doc.get("dwell_strength", 0.0))
            if len(d_score) != len(GRID_D) or dwell_strength not in (0.0, *GRID_D):
                raise SnapshotError("bad token model in snapshot: dwell prior")
            stay = [[float(x) for x in row] for row in doc["stay"]]
            if len(stay) != 3 or any(len(row) != out.k for row in stay):
                raise SnapshotError("bad token model in snapshot: stickiness")
            if len(b_score) != len(GRID_B) or any(len(v) != len(GRID_A) for v in a_score.values()):
                raise SnapshotError("bad token model in snapshot: grid scores")
            counts = doc["counts"]
            if not isinstance(counts, dict):
                raise SnapshotError("counts must be an object")
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"bad token model in snapshot: {exc!r}") from None
        numbers = [*weights, temperature, theta_step, g2, *a.values(), out.prior_strength]
        numbers.append(out.backoff)
        scores = [*b_score, *d_score, *(x for v in a_score.values() for x in v), *stay[0]]
        scores.extend(stay[1])
        if not all(math.isfinite(x) for x in scores) or min(a.values()) <= 0:
            raise SnapshotError("bad token model in snapshot: grid scores")
        if len(weights) != out.k or not all(math.isfinite(x) and x >= 0 for x in numbers):
            raise SnapshotError("bad token model in snapshot: parameters")
        if not (out.prior_strength > 0 and out.backoff > 0 and n_labels >= 0):
            raise SnapshotError("bad token model in snapshot: non-positive parameter")
        out.label_weight, out.temperature, out.g2, out.n_labels = weights, temperature, g2, n_labels
        if not (math.isfinite(soft_weight) and soft_weight >= 0):
            raise SnapshotError("bad token model in snapshot: soft_weight")
        out.soft_weight = soft_weight
        out.theta_step = theta_step
        out.a, out.a_score, out.b_score = a, a_score, b_score
        out.d_score, out.dwell_strength = d_score, dwell_strength
        out.stay_seen, out.stay_expected, out.moves = stay
        for key, values in counts.items():
            if not (isinstance(key, str) and len(key) >= 2 and isinstance(values, list)):
                raise SnapshotError("bad token model in snapshot: counts")
            if len(values) != out.k or not all(
                isinstance(x, int | float) and math.isfinite(x) and x >= 0 for x in values
            ):
                raise SnapshotError(f"bad token model in snapshot: counts of {key[:20]!r}")
            out.counts[key] = [float(x) for x in values]
            if key[0] == "P":
                ctx, slot, value = "P", "p", key[1:]
            else:
                try:
                    slot, ctx, value = out.parts(key)
                except (ValueError, IndexError):
                    raise SnapshotError(f"bad token in snapshot: {key[:20]!r}") from None
                if slot not in out.a:
                    raise SnapshotError(f"bad token in snapshot: {key[:20]!r}")
            total = out.totals.setdefault(ctx, [0.0] * out.k)
            for c, x in enumerate(out.counts[key]):
                total[c] += x
            out.vocab[slot].add(value)
        return out
