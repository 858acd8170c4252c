"""Run the judged evaluation set through every matching mode (what `notifier eval` prints).

evaluate.py holds the measures and takes its embedder as an argument; this
loads the shared model and the bundled papers the set judges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from notifier import evaluate as evaluation
from notifier.demo import seed_papers
from notifier.embedding import shared_embedder
from notifier.match import MODES, default_params


@dataclass(frozen=True)
class EvalReport:
    """Per track (description, query) and mode: metrics per interest, at the defaults and
    with each interest's cut chosen on the others; and the tuning when one was asked for."""

    results: dict[str, dict[str, dict[str, evaluation.Metrics]]]
    held_out: dict[str, dict[str, dict[str, evaluation.Metrics]]]
    tunings: dict[str, evaluation.Tuning]
    # Hybrid descriptions taught by ratings of their top papers (10, then 30).
    feedback: tuple[evaluation.FeedbackRun, ...] = ()

    def table(self, track: str) -> dict[str, list[evaluation.Metrics]]:
        """Return the rows of track's table, one cell per mode: each interest, then the means.

        The means are the macro mean and, for a cross-validated track, the held-out mean.
        """
        by_mode = self.results[track]
        modes = list(by_mode)
        rows = {name: [by_mode[m][name] for m in modes] for name in by_mode[modes[0]]}
        rows["macro mean"] = [evaluation.mean(by_mode[m]) for m in modes]
        if track in self.held_out:
            rows["held out"] = [evaluation.mean(self.held_out[track][m]) for m in modes]
        return rows

    def tuned_means(self, mode: str) -> tuple[evaluation.Metrics, evaluation.Metrics]:
        """Return mode's macro means at its tuned settings: on every interest, and held out."""
        tuning = self.tunings[mode]
        return evaluation.mean(tuning.tuned), evaluation.mean(tuning.held_out)


def run_eval(data_dir: Path, tune: bool = False, cache_dir: Path | None = None) -> EvalReport:
    """Score the judged evaluation set with each mode's defaults (and tune them if asked)."""
    embedder = shared_embedder("hybrid", cache_dir)
    assert embedder is not None
    papers = seed_papers()
    results: dict[str, dict[str, dict[str, evaluation.Metrics]]] = {}
    held_out: dict[str, dict[str, dict[str, evaluation.Metrics]]] = {}
    tunings = {}
    index = None
    feedback: tuple[evaluation.FeedbackRun, ...] = ()
    for track in evaluation.TRACKS:
        evalset = evaluation.load_eval_set(data_dir, papers, track)
        index = index or evaluation.build_index(evalset, embedder)
        evalset = replace(
            evalset,
            interests=tuple(evaluation.with_vectors(i, embedder) for i in evalset.interests),
        )
        results[track] = {}
        for mode in MODES:
            params = default_params(mode)
            if tune and track == "description":
                tunings[mode] = evaluation.tune(evalset, index, mode, params)
                params = tunings[mode].params
            results[track][mode] = evaluation.evaluate(evalset, index, params)
            if track == "description":
                held_out.setdefault(track, {})[mode] = evaluation.cross_validate(
                    evaluation.sweep(evalset, index, params)
                )
            if track == "description" and mode == "hybrid":
                feedback = tuple(
                    evaluation.simulate_feedback(evalset, index, params, n)
                    for n in evaluation.FEEDBACK_RATINGS
                )
    return EvalReport(results, held_out, tunings, feedback)
