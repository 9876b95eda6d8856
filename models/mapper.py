"""PersonaMapper: one visitor's events -> probabilities over every catalog persona.

A generative (Bayesian) model, details in docs/MODELLING.md:

* Each event becomes a few evidence tokens (``models.tokens``), each counted at the level
  where it varies: device and country once per visitor, hour and channel once per session,
  page transitions, dwell, touchpoints and feedback once per event.
* ``models.likelihood.TokenModel`` gives every persona's log-likelihood of a token:
  Dirichlet-smoothed counts of labelled visitors, with the catalog's linking rules as the
  prior (so with no label the rules decide), pages as a per-persona Markov chain, and a
  temperature per slot learned from the labels (calibration).
* A visitor's state keeps the per-persona sum of those log-likelihoods (time-decayed with
  the half-life), the session context and the token counts (the sufficient statistics the
  trainer learns from): ``P(c | visitor) = softmax(log b(c) + ll(c))``.
* A visitor with a label of weight w shows ``w * onehot(label) + (1 - w) * posterior``.
* Unlabelled visitors teach too (online EM, :meth:`PersonaMapper.soft_example`): at 4, 8,
  16 ... events their token counts are added to every persona in proportion to their
  posterior, replacing their previous contribution; a label takes it back.

State is a small JSON-serialisable dict; the mapper is pure (no I/O) and snapshots to bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from models import snapshot
from models.catalog import CHANNELS, PHASES, TOUCH_ACTIONS, TOUCH_CHANNELS, Catalog
from models.enrich import enrich_at, parse_ts
from models.errors import UnknownPersonaError
from models.likelihood import TokenModel
from models.metrics import ProgressiveMetrics
from models.rules import JourneyRules
from models.tokens import (
    CODES,
    DWELL_TOKENS,
    FEEDBACK_CODES,
    START,
    TYPE_CODES,
    VISITOR_SLOTS,
    code,
    dwell_bin,
    dwell_bucket_of_bin,
    hour_of,
    split_codes,
    touch_name,
)

STATE_FORMAT = 3
SNAPSHOT_FORMAT = 4
SESSION_GAP_S = 1800.0
MAX_TOKENS = 64  # distinct tokens kept per visitor for learning (visitor-level ones always)
LL_FLOOR = -30.0  # per-persona log-likelihood relative to the best: keeps states small
NO_EVIDENCE_TYPES = frozenset({"label"})  # the answer itself is not evidence
SOFT_FIRST = 4  # an unlabelled visitor's first soft example: after this many events
SOFT_MIN_SHARE = 0.01  # posterior shares below this add nothing to a persona's counts


class PersonaMapper:
    def __init__(
        self,
        catalog: Catalog,
        half_life_s: float = 7 * 24 * 3600.0,
        prior_strength: float = 10.0,
        backoff: float = 10.0,
    ) -> None:
        if not half_life_s > 0:
            raise ValueError("half_life_s must be > 0")
        if not (prior_strength > 0 and backoff > 0):
            raise ValueError("prior_strength and backoff must be > 0")
        self.catalog = catalog
        self.personas = catalog.persona_ids
        self.half_life_s = float(half_life_s)
        self.model = TokenModel(catalog, prior_strength, backoff)
        self.version = 0
        self.validation = ProgressiveMetrics(self.personas)
        self.journey = JourneyRules(catalog)
        self._page_code = {p: code(i) for i, p in enumerate(self.model.pages)}
        self._other_page = self._page_code["other"]
        self._channel_code = {c: CODES[i] for i, c in enumerate(CHANNELS)}
        self._touch_code = {
            f"{c}:{a}": CODES[i] + CODES[j]
            for i, c in enumerate(TOUCH_CHANNELS)
            for j, a in enumerate(TOUCH_ACTIONS)
        }
        self._index = {p: i for i, p in enumerate(self.personas)}
        self._pages: dict[Any, tuple[str, str]] = {}  # (URL, referrer) -> page, channel

    @property
    def n_labels(self) -> int:
        return self.model.n_labels

    # -- state ----------------------------------------------------------------------------
    def new_state(self) -> dict[str, Any]:
        """``ll``: per-persona log-likelihood (relative to the best), ``ts``: latest event
        (epoch s), ``q``: previous page code of the session (None: a session starts),
        ``k``: token counts (what learning needs), ``n``: events, ``phase``, ``label``."""
        return {
            "v": STATE_FORMAT,
            "ll": [0.0] * len(self.personas),
            "ts": None,
            "q": None,
            "k": {},
            "n": 0,
            "phase": PHASES[0],
        }

    def _usable(self, state: Any) -> dict[str, Any]:
        """The state, or a fresh one if it is of another format (e.g. written by an older
        model version) or of another persona list."""
        if (
            isinstance(state, dict)
            and state.get("v") == STATE_FORMAT
            and isinstance(state.get("ll"), list)
            and len(state["ll"]) == len(self.personas)
            and isinstance(state.get("k"), dict)
        ):
            return state
        fresh = self.new_state()
        if isinstance(state, dict) and state.get("phase") in PHASES:
            fresh["phase"] = state["phase"]
        return fresh

    def observe(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fold one native event into a visitor state; return the new state and the scores.

        The input state is not modified. An event without a usable ``ts`` is taken to
        happen at the visitor's last event time.
        """
        new, features = self._step(self._usable(state), event)
        proba = self._proba(new["ll"], new.get("label"))
        best = max(proba)
        top = self.personas[proba.index(best)]
        return new, {
            "personas": dict(zip(self.personas, proba, strict=True)),
            "top": {"persona": top, "probability": best},
            "phase": new["phase"],
            "features": features,
        }

    def observe_many(
        self, state: dict[str, Any], events: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Fold several events into a state: repeated :meth:`observe` without the scores."""
        state = self._usable(state)
        for event in events:
            state, _ = self._step(state, event)
        return state

    def tokens(
        self,
        state: dict[str, Any],
        event: dict[str, Any],
        features: dict[str, str],
        now: float | None,
    ) -> tuple[list[str], str | None]:
        """The event's evidence tokens given the visitor's context (``models.tokens``) and
        the session's previous-page code after it."""
        kind = event.get("type")
        last, prev = state["ts"], state["q"]
        counts = state["k"]
        out: list[str] = []
        device = features.get("device")
        if device is not None:
            token = f"u{device}/{features.get('os', '')}/{features.get('browser', '')}"
            if token not in counts:
                out.append(token)
        country = features.get("country")
        if country is not None and "g" + country not in counts:
            out.append("g" + country)
        is_page = kind == "page_view"
        channel = features.get("channel") if is_page else None
        # A page without any referrer mid-session (``direct``) is navigation, not an arrival.
        opens = (
            last is None
            or (channel is not None and channel != "direct")
            or (now is not None and now - last > SESSION_GAP_S)
        )
        if opens:
            prev = None
            hour = hour_of(event.get("ts"))
            if hour is not None:
                out.append("h" + CODES[hour])
            day = features.get("day")
            if day is not None:
                out.append("w0" if day == "weekday" else "w1")
        elif kind in TYPE_CODES:
            out.append("y" + TYPE_CODES[kind])
        if is_page:
            if opens and channel is not None:
                out.append("c" + self._channel_code.get(channel, "_"))
            page = self._page_code.get(features.get("page", "other"), self._other_page)
            out.append(f"p{START if prev is None else prev}{page}")
            prev = page
            dwell = event.get("dwell_ms")
            if isinstance(dwell, int) and not isinstance(dwell, bool) and dwell >= 0:
                out.append(DWELL_TOKENS[dwell_bin(dwell)])
        elif kind == "touchpoint":
            touch = self._touch_code.get(features.get("touch", ""))
            if touch is not None:
                out.append("t" + touch)
        elif kind == "feedback":
            fb, score = event.get("kind"), event.get("score")
            if fb in FEEDBACK_CODES and isinstance(score, int | float):
                out.append(f"f{FEEDBACK_CODES[fb]}{int(score)}")
        return out, prev

    def _step(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        when = parse_ts(event.get("ts"))
        features = enrich_at(event, self.catalog, when, self._pages)
        new = dict(state)
        new["n"] = state["n"] + 1
        phase = state["phase"]
        if phase != PHASES[-1]:
            new["phase"] = self.journey.next(phase, features)
        if event.get("type") in NO_EVIDENCE_TYPES:
            persona = event.get("persona")
            if persona in self._index:
                weight = event.get("weight", 1.0)
                weight = float(weight) if isinstance(weight, int | float) else 1.0
                new["label"] = {"persona": persona, "weight": min(max(weight, 0.0), 1.0)}
            return new, features
        last = state["ts"]
        now = when.timestamp() if when is not None else None
        tokens, prev = self.tokens(state, event, features, now)
        now = now if now is not None else last
        seen = state["k"]
        vectors = self.model.vectors(tokens, seen) if tokens else tokens
        if tokens:
            counts = dict(seen)
            for token in tokens:
                if token in counts:
                    counts[token] += 1
                elif len(counts) < MAX_TOKENS or token[0] in VISITOR_SLOTS:
                    counts[token] = 1
            new["k"] = counts
        ll = state["ll"]
        if last is not None and now is not None and now != last:
            # Decay old evidence to `now`; an out-of-order (older) event is discounted instead.
            if now > last:
                factor = 0.5 ** ((now - last) / self.half_life_s)
                ll = [v * factor for v in ll]
                new["ts"] = int(now * 1000.0 + 0.5) / 1000.0  # round(now, 3), now > 0
            else:
                factor = 0.5 ** ((last - now) / self.half_life_s)
                vectors = [[v * factor for v in e] for e in vectors]
        elif now is not None:
            new["ts"] = round(now, 3)
        if vectors:
            ll = list(map(sum, zip(ll, *vectors, strict=True)))
            top = max(ll)
            # round(x, 3) for x <= 0, without its decimal conversion; the floor keeps states small
            new["ll"] = [
                -int(0.5 - 1000.0 * (v - top)) / 1000.0 if v - top > LL_FLOOR else LL_FLOOR
                for v in ll
            ]
        new["q"] = prev
        return new, features

    def profile(self, state: dict[str, Any]) -> dict[str, float]:
        """The visitor's behaviour as readable token counts (``page=docs``, ``touch=...``,
        ``dwell=short``), for discovery."""
        out: dict[str, float] = {}
        counts = state.get("k")
        if not isinstance(counts, dict):
            return out
        pages = self.model.pages
        for token, n in counts.items():
            if not isinstance(n, int | float) or not token:
                continue
            try:
                if token[0] == "p":
                    name = "page=" + pages[split_codes(token[1:])[-1]]
                elif token[0] == "t":
                    name = "touch=" + touch_name(token[1:])
                elif token[0] == "d":
                    name = "dwell=" + dwell_bucket_of_bin(split_codes(token[1:])[0])
                else:
                    continue
            except (ValueError, IndexError):
                continue
            out[name] = out.get(name, 0.0) + float(n)
        return out

    def _decay(self, last: float | None, now: float | None) -> float:
        if last is None or now is None or now <= last:
            return 1.0
        return float(0.5 ** ((now - last) / self.half_life_s))

    # -- scoring --------------------------------------------------------------------------
    def score(self, state: dict[str, Any], *, use_label: bool = True) -> dict[str, float]:
        """Current distribution over every persona (sums to 1) for a visitor state."""
        state = self._usable(state)
        ll = [
            float(v) if isinstance(v, float | int) and math.isfinite(v) else 0.0
            for v in state["ll"]
        ]
        label = state.get("label") if use_label else None
        return self._distribution(ll, label if isinstance(label, dict) else None)

    def _distribution(self, ll: list[float], label: dict[str, Any] | None) -> dict[str, float]:
        return dict(zip(self.personas, self._proba(ll, label), strict=True))

    def _proba(self, ll: list[float], label: dict[str, Any] | None) -> list[float]:
        """The distribution as a list in persona order."""
        logits = [b + v for b, v in zip(self.model.log_base(), ll, strict=True)]
        top = max(logits)
        exp = math.exp
        exps = [exp(v - top) for v in logits]
        total = sum(exps)
        if label and label.get("persona") in self._index:
            w = label.get("weight", 1.0)
            w = min(max(float(w), 0.0), 1.0) if isinstance(w, float | int) else 1.0
            exps = [
                (1 - w) * q / total + (w if p == label["persona"] else 0.0)
                for p, q in zip(self.personas, exps, strict=True)
            ]
            total = sum(exps)
        return [q / total for q in exps]

    # -- learning -------------------------------------------------------------------------
    def check_persona(self, persona: str) -> None:
        if persona not in self._index:
            raise UnknownPersonaError(persona, self.personas)

    def learn(self, state: dict[str, Any], persona: str, weight: float = 1.0) -> dict[str, Any]:
        """Learn from a labelled visitor: predict first (progressive validation), then train.

        The prediction re-scores the visitor's token counts with the current model (before
        they are added), which is also what the temperature is fitted on. ``weight``
        (0, 1] scales how much the label counts (token counts, base rate, metrics).
        """
        self.check_persona(persona)
        if not (isinstance(weight, int | float) and 0.0 < weight <= 1.0):
            raise ValueError(f"label weight must be in (0, 1], got {weight!r}")
        state = self._usable(state)
        truth = self._index[persona]
        previous = self._previous_soft(state)
        if previous is not None:  # what it taught unlabelled: the label replaces it
            self.model.add_soft(previous[0], [-w for w in previous[1]])
        slot_ll = self.model.slot_log_likelihoods(state["k"])
        proba = self.model.predict(slot_ll)
        info = self.validation.update(dict(zip(self.personas, proba, strict=True)), persona)
        self.model.fit_temperature(slot_ll, proba, truth, float(weight))
        self.model.select(state["k"], truth, float(weight))
        self.model.add(state["k"], truth, float(weight))
        return info

    # -- learning from unlabelled visitors (online EM) ----------------------------------------
    def soft_example(
        self, state: dict[str, Any], weight: float, min_labels: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """What an unlabelled visitor teaches: its token counts, shared among the personas
        by its posterior (times ``weight``), replacing what it taught before.

        Due when the visitor's event count reaches 4, 8, 16 ... (about log2(events) examples
        per visitor, the last covering at least half of its events), once the model has
        ``min_labels`` labels: without labels to anchor them, personas estimated from their
        own guesses can drift into one another. Returns the state (remembering this
        contribution, so the next one, or a label, takes it back) and the example for
        :meth:`learn_soft`, or ``(state, None)``.

        The previous contribution is kept as counts aligned with the first keys of the
        state's token counts (tokens are only ever appended to them), not a second dict.
        """
        n = state.get("n", 0)
        if (
            weight <= 0
            or n < SOFT_FIRST
            or n & (n - 1)
            or self.n_labels < min_labels
            or "label" in state
        ):
            return state, None
        counts = state["k"]
        proba = self._proba(state["ll"], None)
        weights = [round(weight * p, 4) if p >= SOFT_MIN_SHARE else 0.0 for p in proba]
        example: dict[str, Any] = {"add": dict(counts), "w": weights}
        previous = self._previous_soft(state)
        if previous is not None:
            example["remove"], example["rw"] = previous
        new = dict(state)
        new["s"] = {"n": list(counts.values()), "w": weights}
        return new, example

    def _previous_soft(self, state: dict[str, Any]) -> tuple[dict[str, Any], list[float]] | None:
        """The (counts, weights) a state's last soft example added, or None."""
        soft = state.get("s")
        if not isinstance(soft, dict):
            return None
        counts, weights = soft.get("n"), soft.get("w")
        if not (isinstance(counts, list) and isinstance(weights, list)):
            return None
        keys = list(state["k"])
        if len(counts) > len(keys) or len(weights) != len(self.personas):
            return None
        return dict(zip(keys, counts, strict=False)), weights

    @staticmethod
    def settled(state: dict[str, Any]) -> dict[str, Any]:
        """The state once its label has been sent to the trainer: the soft contribution the
        label takes back (:meth:`learn`) is forgotten, so it is taken back only once."""
        if "s" not in state:
            return state
        new = dict(state)
        del new["s"]
        return new

    def learn_soft(self, example: Any) -> None:
        """Apply a :meth:`soft_example`: take back the previous contribution, add the new.
        Raises ``ValueError`` for a malformed example (nothing is applied then)."""
        if not isinstance(example, dict):
            raise ValueError("a soft example must be an object")
        parts = [(example.get("add"), example.get("w"), 1.0)]
        if example.get("remove") is not None:
            parts.append((example.get("remove"), example.get("rw"), -1.0))
        checked = []
        for counts, weights, sign in parts:
            if not isinstance(counts, dict) or not all(
                isinstance(t, str) and isinstance(n, int | float) and math.isfinite(n) and n >= 0
                for t, n in counts.items()
            ):
                raise ValueError("soft example counts must map tokens to numbers >= 0")
            if not (
                isinstance(weights, list)
                and len(weights) == len(self.personas)
                and all(isinstance(w, int | float) and 0 <= w <= 1 for w in weights)
            ):
                raise ValueError(
                    f"soft example weights must be {len(self.personas)} numbers in [0, 1]"
                )
            checked.append((counts, [sign * float(w) for w in weights]))
        for counts, weights in reversed(checked):  # take back first, then add
            self.model.add_soft(counts, weights)

    def fit_gain(self, state: dict[str, Any]) -> float | None:
        """Per token, how much better the best persona explains the visitor than the pooled
        population (``TokenModel.fit_gain``); discovery's sign of a persona the catalog lacks."""
        counts = state.get("k")
        return self.model.fit_gain(counts) if isinstance(counts, dict) else None

    def merge_states(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """One person seen as two visitors: evidence and counts add up, the furthest phase wins."""
        a, b = self._usable(a), self._usable(b)
        ts_a, ts_b = a.get("ts"), b.get("ts")
        times = [t for t in (ts_a, ts_b) if t is not None]
        now = max(times) if times else None
        fa = self._decay(ts_a, now) if now is not None else 1.0
        fb = self._decay(ts_b, now) if now is not None else 1.0
        ll = [x * fa + y * fb for x, y in zip(a["ll"], b["ll"], strict=True)]
        top = max(ll)
        counts = dict(a["k"])
        for token, n in b["k"].items():
            if token in counts:
                counts[token] += n
            elif len(counts) < MAX_TOKENS or token[0] in VISITOR_SLOTS:
                counts[token] = n
        labels = [x for x in (a.get("label"), b.get("label")) if isinstance(x, dict)]
        later = b if (ts_b or 0.0) >= (ts_a or 0.0) else a
        out = {
            "v": STATE_FORMAT,
            "ll": [round(max(v - top, LL_FLOOR), 3) for v in ll],
            "ts": now,
            "q": later.get("q"),
            "k": counts,
            "n": a.get("n", 0) + b.get("n", 0),
            "phase": max(a.get("phase", PHASES[0]), b.get("phase", PHASES[0]), key=PHASES.index),
        }
        if labels:
            out["label"] = max(labels, key=lambda x: x.get("weight", 0.0))
        if "s" in a:  # a's tokens lead the merged counts, so its soft example stays aligned
            out["s"] = a["s"]  # (b's stays in the model: one visitor's worth, counted twice)
        return out

    # -- lifecycle ------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return {
            **self.validation.summary(),
            "version": self.version,
            "labels_learned": self.n_labels,
            "unlabelled_weight": round(self.model.soft_weight, 1),
            "temperature": round(self.model.temperature, 4),
            "prior_strengths": dict(self.model.a),
            "page_backoff": self.model.backoff,
            "dwell_lognormal_strength": self.model.dwell_strength,
        }

    def drift(self) -> dict[str, dict[str, bool]]:
        """ADWIN drift flags by signal and persona (``models.metrics``), for the metrics hook."""
        return self.validation.drift()

    def snapshot(self) -> bytes:
        """The learned model as bytes: compressed JSON (see ``models.snapshot``), never code."""
        return snapshot.encode(
            {
                "format": SNAPSHOT_FORMAT,
                "version": self.version,
                "personas": self.personas,
                "half_life_s": self.half_life_s,
                "model": self.model.to_dict(),
                "validation": self.validation.to_dict(),
            }
        )

    @classmethod
    def from_snapshot(cls, data: bytes, catalog: Catalog) -> PersonaMapper:
        """Rebuild a mapper from :meth:`snapshot` bytes (hot swap: build, then replace).

        Raises ``ValueError`` (``models.snapshot.SnapshotError``) for anything else, including
        a snapshot of an older format or trained on a different persona catalog.
        """
        doc = snapshot.decode(data)
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise snapshot.SnapshotError(f"unsupported snapshot format {doc.get('format')!r}")
        if doc.get("personas") != catalog.persona_ids:
            raise snapshot.SnapshotError("snapshot was trained on a different persona catalog")
        version, half_life = doc.get("version"), doc.get("half_life_s")
        if not isinstance(version, int) or version < 0:
            raise snapshot.SnapshotError("snapshot version must be an integer >= 0")
        if not isinstance(half_life, int | float) or not half_life > 0:
            raise snapshot.SnapshotError("snapshot half_life_s must be > 0")
        mapper = cls(catalog, half_life_s=float(half_life))
        mapper.model = TokenModel.from_dict(doc.get("model"), catalog)
        mapper.validation = ProgressiveMetrics.from_dict(doc.get("validation"), mapper.personas)
        mapper.version = version
        return mapper
