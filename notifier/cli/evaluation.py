"""Measuring matching: eval, on the judged papers of tests/data/eval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from notifier.cli.base import Context, pass_context

if TYPE_CHECKING:
    from notifier.evaluate import Metrics


@click.command("eval")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("tests/data/eval"),
    show_default=True,
    help="Directory with interests.toml and judgments/*.tsv.",
)
@click.option("--tune", is_flag=True, help="Search weights and thresholds and print the best.")
@pass_context
def evaluate_matching(context: Context, data_dir: Path, tune: bool) -> None:
    """Measure matching on judged papers: precision, recall, F1, nDCG@10 per interest.

    Two tracks: each interest's description alone (as --about), and its query
    alone. The lexical, semantic and hybrid scorers are shown side by side at
    their default settings (or, with --tune, at the settings found best), then
    the macro figures with each interest's cut chosen on the other interests.
    """
    from notifier import evaluate as evaluation
    from notifier.eval_run import run_eval

    report = run_eval(data_dir, tune=tune, cache_dir=context.settings.cache_dir)
    for track, by_mode in report.results.items():
        modes = list(by_mode)
        click.echo(f"\n{track} alone ({len(by_mode[modes[0]])} interests)")
        click.echo(f"{'interest':<20}" + "".join(f" | {m:^33}" for m in modes))
        columns = " | {:>6} {:>6} {:>6} {:>7} {:>3}".format("P", "R", "F1", "nDCG10", "n")
        click.echo(f"{'':<20}" + columns * len(modes))
        for name, cells in report.table(track).items():
            click.echo(f"{name:<20}" + "".join(_metric_cells(m) for m in cells))
    if report.held_out:
        click.echo(
            "\nheld out: each interest's cut chosen on the other interests (macro mean); "
            "n: papers delivered"
        )
    if report.feedback:
        click.echo(
            "\nfeedback (hybrid descriptions): each interest's top papers rated by their "
            "grades, the rest scored (macro F1 / nDCG@10)"
        )
    for run in report.feedback:
        before, after, held = (
            evaluation.mean(run.without),
            evaluation.mean(run.with_feedback),
            evaluation.mean(run.held_out),
        )
        click.echo(
            f"  {run.ratings} ratings: without {before.f1:.3f} / {before.ndcg10:.3f}; "
            f"with {after.f1:.3f} / {after.ndcg10:.3f} ({after.f1 - before.f1:+.3f} F1); "
            f"weight chosen on the other interests {held.f1:.3f} / {held.ndcg10:.3f} "
            f"({held.f1 - before.f1:+.3f} F1)"
        )
    for mode, tuning in report.tunings.items():
        p = tuning.params
        tuned, held = report.tuned_means(mode)
        click.echo(
            f"tuned {mode}: macro F1 {tuned.f1:.3f} nDCG@10 {tuned.ndcg10:.3f}; "
            f"held out F1 {held.f1:.3f} nDCG@10 {held.ndcg10:.3f}; "
            f"semantic_weight={p.semantic_weight} description_scale={p.description_scale} "
            f"semantic_margin={p.semantic_margin} facet_weight={p.facet_weight} "
            f"thresholds={dict(p.thresholds[mode])}"
        )


def _metric_cells(m: Metrics) -> str:
    """Return one scorer's figures as table cells."""
    return f" | {m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f} {m.ndcg10:7.3f} {m.retrieved:>3}"
