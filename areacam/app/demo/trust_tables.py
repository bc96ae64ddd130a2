"""The "which method to trust" table as Markdown and HTML, the sentences that say what it shows, and its
figure; an undefined value is written "undefined", never as a number."""

from __future__ import annotations

import numpy as np

from areacam.app.demo.cases import SANITY_TOP, Case, Row
from areacam.viz.images import save_figure

__all__ = ["COLUMNS", "UNDEFINED", "html_table", "markdown_table", "trust_figure", "which_method"]


COLUMNS = [
    ("deletion", "deletion AUC ↓"),
    ("insertion", "insertion AUC ↑"),
    ("pointing_game", "pointing game ↑"),
    ("relevance_mass", "relevance mass ↑"),
    ("spearman_top", "Spearman, top stage random"),
    ("spearman_all", "Spearman, all random ↓"),
]


#: What a table shows for an undefined value (e.g. a deletion AUC whose curve cannot be normalised).
UNDEFINED = "undefined"


def _cell(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:.2f}"


def _shown(row: Row, key: str) -> str:
    """A table cell: empty where the row does not measure ``key`` (the chance row's sanity columns)."""
    return _cell(row.values[key]) if key in row.values else ""


def markdown_table(results: list[tuple[Case, list[Row]]]) -> str:
    """One Markdown table: a block of rows per model, the chance level first."""
    head = "| model (layer, images) | method | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [head, "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for case, rows in results:
        for i, row in enumerate(rows):
            label = f"{case.title}: {case.target} at `{case.layer}`, {case.count} images" if i == 0 else ""
            cells = " | ".join(_shown(row, key) for key, _ in COLUMNS)
            lines.append(f"| {label} | {row.method} | {cells} |")
    return "\n".join(lines)


def html_table(results: list[tuple[Case, list[Row]]]) -> str:
    """The same table in HTML (best value per model and column in bold)."""
    import html

    parts = ['<table class="trust"><thead><tr><th>model</th><th>method</th>']
    parts += [f"<th>{html.escape(title)}</th>" for _, title in COLUMNS]
    parts.append("</tr></thead><tbody>")
    for case, rows in results:
        best = {}
        for key, _ in COLUMNS:
            vals = [value for r in rows[1:] if (value := r.values.get(key)) is not None]
            if vals and not key.startswith("spearman_top"):
                best[key] = min(vals) if key in ("deletion", "spearman_all") else max(vals)
        for i, row in enumerate(rows):
            label = (
                f"{html.escape(case.title)}<br><small>{html.escape(case.target)} at "
                f"<code>{html.escape(case.layer)}</code>, {case.count} images</small>"
            )
            cell = f'<td rowspan="{len(rows)}">{label}</td>' if i == 0 else ""
            parts.append(f'<tr class="{"chance" if i == 0 else ""}">{cell}<td>{html.escape(row.method)}</td>')
            for key, _ in COLUMNS:
                value = row.values.get(key)
                text = _shown(row, key)
                bold = i > 0 and value is not None and best.get(key) == value
                parts.append(f"<td>{'<b>' + text + '</b>' if bold else text}</td>")
            parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _best(rows: list[Row], key: str, pick=max) -> Row | None:
    """The row with the best defined ``key`` (``None`` when no row defines it)."""
    defined = [r for r in rows if r.values.get(key) is not None]
    return pick(defined, key=lambda r: r.values[key]) if defined else None


def which_method(results: list[tuple[Case, list[Row]]]) -> list[str]:
    """Sentences saying what the table says, each backed by its numbers; undefined values say so."""
    lines = []
    for case, rows in results:
        chance, methods = rows[0], rows[1:]
        local = _best(methods, "pointing_game")
        faithful = _best(methods, "deletion", min)
        text = f"{case.title}: "
        if local is not None:
            text += (
                f"{local.method} points into the object most often (pointing game "
                f"{_cell(local.values['pointing_game'])}, chance {_cell(chance.values['pointing_game'])})"
            )
        if faithful is not None:
            text += (
                f"; {faithful.method}'s ranking removes the score fastest (deletion AUC "
                f"{_cell(faithful.values['deletion'])}, random ranking {_cell(chance.values['deletion'])})"
            )
        else:
            text += (
                "; the deletion AUC is undefined for every method (the target's score hardly changes "
                "between the intact and the fully perturbed image)"
            )
        lines.append(text + ".")
    names = [r.method for r in results[0][1][1:]]
    table = {(case.key, r.method): r.values for case, rows in results for r in rows[1:]}
    titles = {case.key: case.title for case, _ in results}

    def worst(name: str, key: str) -> tuple[float | None, str]:
        """The highest value over the models (``None``: no model had an informative map)."""
        values = [(table[(model, name)][key], titles[model]) for model in titles]
        present = [(v, title) for v, title in values if v is not None]
        return max(present) if present else (None, "")

    stuck = [n for n in names if (worst(n, "spearman_top")[0] or 0.0) >= SANITY_TOP]
    lines.append(
        "Sanity check, cascading randomisation (Adebayo et al. 2018): with only the top stage re-initialised, "
        + (
            ", ".join(
                f"{n} (Spearman {_cell(worst(n, 'spearman_top')[0])} on the {worst(n, 'spearman_top')[1]})"
                for n in stuck
            )
            + f" keep maps correlated >= {SANITY_TOP} with the trained model's: they "
            "barely depend on the weights that make the decision"
            if stuck
            else f"every method's maps fall below Spearman {SANITY_TOP} on every model"
        )
        + "; with every stage re-initialised, "
        + ", ".join(f"{n} {_cell(worst(n, 'spearman_all')[0])}" for n in names)
        + " (highest Spearman over the models; < 0.5 passes)."
    )
    return lines


def trust_figure(results: list[tuple[Case, list[Row]]], path) -> None:
    """Per model: deletion AUC (beside the random ranking's) and pointing game (beside chance) per method."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(3.2 * len(results), 5.2), layout="constrained")
    axes = fig.subplots(2, len(results), squeeze=False)
    for c, (case, rows) in enumerate(results):
        chance, methods = rows[0], rows[1:]
        names = [r.method for r in methods]
        pos = np.arange(len(names))
        for r, (key, label) in enumerate(
            (
                ("deletion", "deletion AUC (lower: more faithful)"),
                ("pointing_game", "pointing game (higher: localises)"),
            )
        ):
            ax = axes[r, c]
            values = [m.values[key] for m in methods]
            ax.barh(pos, [0.0 if v is None else v for v in values], color="C0" if r == 0 else "C2")
            for p, v in zip(pos, values):
                if v is None:
                    ax.text(0.02, p, UNDEFINED, va="center", fontsize=6, color="C3")
            if chance.values[key] is not None:
                ax.axvline(
                    chance.values[key],
                    color="C3",
                    linestyle="--",
                    label="random ranking" if r == 0 else "chance (mask share)",
                )
            ax.set_yticks(pos, names if c == 0 else [""] * len(names), fontsize=7)
            ax.invert_yaxis()
            shown = [v for v in (*values, chance.values[key]) if v is not None]
            ax.set_xlim(min([0.0, *shown]), max([1.0, *shown]))  # a defined AUC lies in [-1, 2]
            ax.tick_params(labelsize=7)
            ax.set_xlabel(label, fontsize=7)
            if r == 0:
                ax.set_title(f"{case.title}\n{case.layer}", fontsize=8)
            if chance.values[key] is not None:
                ax.legend(fontsize=6, loc="lower right")
    save_figure(fig, path)
