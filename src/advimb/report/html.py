"""``report/index.html`` from the report's results dict (and nothing else).

One static page: inline CSS, no scripts, no network; figures are PNG files beside it
(``figures/``), with links to their SVG/PDF versions. Readable on a laptop screen
(max width ~70em) and printable (figures never split across pages).
"""

from __future__ import annotations

from html import escape
from typing import Any

from advimb import __version__
from advimb.report.text import ci, fmt

CSS = """
:root { --fg:#1b1b1b; --muted:#5a5a5a; --line:#d0d0d0; --ok:#009E73; --bad:#D55E00; --unk:#7a6a00; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       max-width: 72em; margin: 0 auto; padding: 1.5em 1.5em 4em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid var(--line); }
.meta, .caption, .note { color: var(--muted); }
table { border-collapse: collapse; margin: .8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .25em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
tr.avg td { font-weight: 600; background: #fafafa; }
td.diff-pos { color: #8a4b00; } td.diff-neg { color: #3b2c86; }
figure { margin: 1.5em 0; break-inside: avoid; page-break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { max-width: 60em; }
.verdict { font-weight: 700; padding: .05em .45em; border-radius: .3em; color: white; white-space: nowrap; }
.v-direction-reproduced { background: var(--ok); } .v-direction-not-reproduced { background: var(--bad); }
.v-inconclusive, .v-not-measurable { background: var(--unk); } .v-floor-effect { background: #6a5d8c; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
.claim { border-left: 4px solid var(--line); padding-left: 1em; margin: 1.2em 0; break-inside: avoid; }
@media print { body { max-width: none; font-size: 10pt; } a { color: inherit; } h2 { break-after: avoid; } }
"""



def _badge(shown_as: str) -> str:
    return f'<span class="verdict v-{shown_as.replace(" ", "-")}">{escape(shown_as)}</span>'



def _label(key: str) -> str:
    return key.replace("_percent", "").replace("_", " ")


def _table1(t1: dict[str, Any]) -> str:
    """Table 1 with each cell's interval (and the paper's value and the difference when the
    run is in the paper's setting); the caption names the interval method."""
    cols, comp = t1["columns"], t1["paper_comparable"]
    head = "".join(f'<th colspan="{3 if comp else 1}">{escape(_label(c))}</th>' for c in cols)
    sub = "".join("<th>run</th><th>paper</th><th>diff</th>" for _ in cols) if comp else ""
    rows = []
    for r in [*t1["rows"], t1["average"]]:
        cells = []
        for c in cols:
            ci = (r.get("ci") or {}).get(c)
            extra = f" <small>[{fmt(ci[0])}, {fmt(ci[1])}]</small>" if ci and ci[0] is not None else ""
            cells.append(f"<td>{fmt(r['measured'][c])}{extra}</td>")
            if comp:
                d = r["difference"][c]
                cls = "" if d is None else ("diff-pos" if d > 0 else "diff-neg")
                cells.append(f"<td>{fmt(r['paper'][c])}</td><td class='{cls}'>{fmt(d, 1)}</td>")
        avg = ' class="avg"' if r is t1["average"] else ""
        rows.append(f"<tr{avg}><td>{escape(r['class'])}</td>{''.join(cells)}</tr>")
    subrow = f"<tr><th></th>{sub}</tr>" if comp else ""
    within = (f" {t1['cells_within_10_points'][0]} of {t1['cells_within_10_points'][1]} cells are within 10 points "
              "of the paper's." if comp else "")
    return (f"<table><caption class='note' style='caption-side:bottom;text-align:left'>Accuracy (%) of the target "
            f"class's attacked test images; [95% interval: {escape(t1['interval'])}].{within}</caption>"
            f"<thead><tr><th>class</th>{head}</tr>{subrow}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _rel_avg(res: dict[str, Any], kind: str) -> str:
    """The mean relative difference of one kind of model, or why it is undefined."""
    v = res["relative_difference"]["average"].get(kind)
    if v is not None:
        return f"{v:.1f}%"
    und = res["relative_difference"]["undefined"].get(kind) or []
    return f"undefined: clean accuracy 0 for {', '.join(und)}" if und else "undefined"


def _captions(res: dict[str, Any]) -> dict[str, str]:
    """One paragraph per figure: what it shows, and the number to look at."""
    t1 = res["table1"]
    pair = res["pair"]["classes"]
    out = {
        "table1": "Accuracy (%) of each target class's attacked test images, for the five model/gradient "
                  "combinations of the paper's Table 1: left this run, middle the paper's published values, right "
                  "the cell-wise difference this run minus paper in percentage points (purple: lower than the "
                  "paper, orange: higher)." if t1["paper_comparable"] else
                  "Accuracy (%) of each target class's attacked test images for the five combinations of Table 1.",
        "fig2": "Clean accuracy (%) of each target class on the full test set for the balanced model, the model "
                "trained with that class under-sampled, and the model trained with it over-sampled (all other "
                "classes reduced). Imbalance moves the decision boundary: minority classes lose recall, majority "
                "classes gain it.",
        "fig4": "Relative difference 100 x (clean - perturbed) / clean of the target class under the same-model "
                "attack, both accuracies on the attacked test images; the last group is the mean over classes ("
                + ", ".join(f"{name} {_rel_avg(res, kind)}" for kind, name in
                            (("balanced", "balanced"), ("under", "under-sampled"), ("over", "over-sampled")))
                + "). Higher means the attack removes a larger share of what the model got right. A class whose "
                "clean accuracy is 0 has no bar (its relative difference is undefined).",
        "fig6": f"Predicted-label distribution of the {pair[0]} and {pair[1]} test images, clean (hatched) and "
                f"after the same-model attack (solid), for the models trained with each class under-sampled and "
                "over-sampled (the paper's Fig. 6 layout). A tall perturbed bar on the other class of the pair "
                "means the attack pushes images into the similar class.",
        "fig6b": "Where perturbed images go, for every target class: row = attacked class, column = label "
                 "predicted after the same-model attack, value = % of that class's attacked images. Each row of "
                 "the under-/over-sampled panels comes from a different model (the one with that row's class "
                 "under-/over-sampled); the diagonal is the accuracy under attack.",
    }
    out["fig7"] = ("Accuracy (%) of the target class under attack, mean over classes (thick, with markers) and "
                   "the worst class (thin), against the attack budget eps on a log scale, for each attack of the "
                   "sweep. Solid: same-model attack; dashed: different-model (transfer) attack from the balanced "
                   "model. BIM and PGD take 10 steps of 2.5 eps / 10 unless the config says otherwise.")
    for f in res["figures"]:
        d = f["data"]
        if f["id"] == "fig1":
            out["fig1"] = (f"The balanced model: training and validation cross-entropy and accuracy per epoch "
                           f"({d['epochs']} epochs; best validation loss {d['best_val_loss']} at epoch "
                           f"{d['best_epoch']}, whose weights are kept) and its confusion matrix on the clean test "
                           f"set, each row normalised to 100% (overall accuracy "
                           f"{ci(res['balanced_clean_accuracy'])}).")
        if f["id"] == "fig3":
            out["fig3"] = (f"Test images attacked with the balanced model's own gradient (FGSM, eps {d['eps']:g} "
                           f"on the [0, 1] pixel scale): the clean image with the predicted label and its softmax "
                           f"confidence, the perturbation amplified {d['amplification']:g}x around mid-grey so it "
                           "is visible, and the adversarial image with the label and confidence after the attack. "
                           "Images the attack flipped are preferred when the stored examples include one.")
    out.update({k: v for k, v in EXPERIMENT_CAPTIONS.items() if any(f["id"] == k for f in res.get("figures", []))})
    return out


VERDICT_HELP = ("Each claim's verdict is a <b>sign test</b>: the difference the paper predicts is positive is "
                "<b>direction reproduced</b> when every such difference has its 95% interval above 0, <b>direction "
                "not reproduced</b> when any interval lies below 0, <b>inconclusive</b> when an interval contains 0, "
                "and <b>not measurable</b> when a difference is undefined in this run. It says nothing about size: "
                "<i>magnitude</i> sets this run's values beside the paper's (inside or outside this run's interval), "
                "shown only when the run is in the paper's setting. A comparison that rests on under-sampled models "
                "which hardly ever predict their own class on clean images is shown as <b>floor effect</b>, "
                "whatever its sign test says.")


def _magnitude(c: dict[str, Any]) -> str:
    from advimb.results.claims import magnitude_text

    return escape(magnitude_text(c))


def _claims(claims: dict[str, Any]) -> str:
    parts = [f"<p class='note'>Intervals: {escape(claims['interval_method'])}, paired where two quantities share "
             f"images. {VERDICT_HELP}</p>"]
    for c in claims["claims"]:
        inside = c.get("paper_value_in_interval", {})
        mark = {True: " (inside the CI)", False: " (outside the CI)", None: ""}
        meas = "".join(
            f"<tr><td>{escape(_label(k))}</td><td>{ci(v)}</td>"
            f"<td>{fmt(c['paper'].get(k)) + '%' + mark[inside.get(k)] if isinstance(c['paper'].get(k), (int, float)) else 'n/a'}</td></tr>"
            for k, v in c["measured"].items())
        comps = "".join(f"<tr><td>{escape(x['label'])}{' (floor effect)' if x.get('floor_effect') else ''}</td>"
                        f"<td>{ci(x, '')}</td><td>{_seed_test(x)}</td></tr>" for x in c["comparisons"])
        other = {k: v for k, v in c["paper"].items() if not isinstance(v, (int, float)) and v is not None}
        other_html = "".join(f"<p>Paper: {escape(str(v))}</p>" for v in other.values())
        floor = f"<p class='note'><b>{escape(c['floor_effect'])}</b> Sign test alone: {escape(c['verdict'])}.</p>" \
            if c["floor_effect"] else ""
        notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in c["notes"])
        parts.append(
            f"<div class='claim' id='{c['id']}'><h3>{c['id']} {_badge(c['shown_as'])}</h3><p>{escape(c['statement'])}</p>"
            f"<table><thead><tr><th>{'quantity' if c['id'].startswith('C4') else 'measured (mean over classes)'}</th>"
            f"<th>this run [95% CI]</th><th>paper</th></tr>"
            f"</thead><tbody>{meas}</tbody></table>{other_html}"
            f"<table><thead><tr><th>difference the claim predicts &gt; 0 (sign test)</th><th>estimate [95% CI]</th>"
            f"<th>paired t-test over seeds</th></tr></thead>"
            f"<tbody>{comps or '<tr><td colspan=3>none measurable in this run</td></tr>'}</tbody></table>"
            f"<p><i>Magnitude:</i> {_magnitude(c)}.</p>{floor}{notes}</div>")
    return "".join(parts)


def _seed_test(x: dict[str, Any]) -> str:
    t = x.get("seed_test")
    if not t:
        return "one seed"
    return f"t({t['df']}) = {fmt(t['t'], 2)}, p = {fmt(t['p'], 4)} (per seed: {', '.join(fmt(v) for v in t['per_seed'])})"


def _manifest(m: dict[str, Any]) -> str:
    env = m.get("environment", {})
    ds = m.get("dataset", {})
    rows = [("dataset", f"{ds.get('name')} ({ds.get('origin')})"), ("dataset fingerprint", ds.get("fingerprint")),
            ("status", m.get("status")), ("created", m.get("created")), ("finished", m.get("finished")),
            *((k, v) for k, v in env.items())]
    body = "".join(f"<tr><td>{escape(str(k))}</td><td style='text-align:left'>{escape(str(v))}</td></tr>"
                   for k, v in rows)
    inv = "".join(
        f"<tr><td>{escape(i.get('started', ''))}</td><td style='text-align:left'><code>{escape(' '.join(i.get('argv', [])))}"
        f"</code></td><td>{escape(str(i.get('status')))}</td><td>{i.get('jobs_run', '')}</td>"
        f"<td>{i.get('jobs_skipped', '')}</td><td>{i.get('wall_seconds', '')}</td></tr>"
        for i in m.get("invocations", []))
    return (f"<table><tbody>{body}</tbody></table><h3>Invocations</h3><table><thead><tr><th>started</th>"
            f"<th>command</th><th>status</th><th>jobs run</th><th>skipped</th><th>wall s</th></tr></thead>"
            f"<tbody>{inv}</tbody></table>")


def _sweep(sw: dict[str, Any] | None) -> str:
    if not sw:
        return ""
    head = ("<tr><th>attack</th><th>eps</th><th>column</th><th>accuracy</th><th>worst class</th>"
            "<th>success rate</th><th>min. FGSM eps</th><th>under &lt; balanced</th><th>balanced &lt; over</th></tr>")
    rows = []
    for r in sw["summary"]:
        same_bal = r["column"] == "same_model_balanced"
        me = "" if r.get("min_eps_mean") is None else f"{r['min_eps_mean']:.4f}"
        rows.append(
            f"<tr><td>{escape(r['attack'])}</td><td>{r['eps']:g}</td><td>{escape(_label(r['column']))}</td>"
            f"<td>{fmt(r['accuracy'])}%</td><td>{fmt(r['worst_class_accuracy'])}% ({escape(r['worst_class'])})</td>"
            f"<td>{fmt(r['success_rate'])}%</td><td>{me}</td>"
            f"<td>{str(r['under_lt_balanced']) + '/' + str(r['classes']) if same_bal else ''}</td>"
            f"<td>{str(r['balanced_lt_over']) + '/' + str(r['classes']) if same_bal else ''}</td></tr>")
    return ("<h2>Attack and eps sweep</h2><p>Robust-accuracy metrics per sweep point and Table 1 column, over "
            "target classes: accuracy under attack (the mean over classes, which is the balanced accuracy since every "
            "class has as many attacked images), the worst class, the attack success rate on images the model "
            "classified correctly before the attack, and (FGSM, at the largest eps) the mean minimal eps that flips "
            "an initially-correct image, found by bisection along the FGSM direction (10 halvings; images that do "
            "not flip at the largest eps are left out of the mean). The last two columns count the classes that "
            "follow the paper's ordering of same-model accuracy.</p>"
            f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")


def render(res: dict[str, Any]) -> str:
    """The whole page as a string."""
    caps = _captions(res)
    run, claims = res["run"], res["claims"]
    verdicts = "".join(
        f"<tr><td><a href='#{c['id']}'>{c['id']}</a></td><td style='text-align:left'>{escape(c['statement'])}"
        f"{'<br><small>' + escape(c['floor_effect']) + '</small>' if c['floor_effect'] else ''}</td>"
        f"<td>{_badge(c['shown_as'])}</td><td style='text-align:left'><small>{_magnitude(c)}</small></td></tr>"
        for c in claims["claims"])
    figs = []
    for f in res["figures"]:
        if f["id"] == "table1":
            continue
        links = " · ".join(f"<a href='{escape(p)}'>{k.upper()}</a>" for k, p in f["files"].items())
        figs.append(f"<figure id='{f['id']}'><img src='{escape(f['files']['png'])}' alt='{escape(f['title'])}'>"
                    f"<figcaption><b>{escape(f['title'])}.</b> {escape(caps.get(f['id'], ''))} "
                    f"<span class='note'>Data: {escape(', '.join(f['sources'][:3]))}"
                    f"{' and more' if len(f['sources']) > 3 else ''}. {links}</span></figcaption></figure>")
    figs += [f"<p class='note' id='{escape(f['id'])}'><b>{escape(f['title'])}</b> is not drawn: {escape(f['reason'])}.</p>"
             for f in res.get("figures_not_drawn", [])]
    t1fig = next((f for f in res["figures"] if f["id"] == "table1"), None)
    t1img = (f"<figure><img src='{escape(t1fig['files']['png'])}' alt='Table 1 heatmaps'><figcaption>"
             f"{escape(caps['table1'])}</figcaption></figure>") if t1fig else ""
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in res["notes"])
    ref = res["reference"]
    paper_notes = ""
    if res["table1"]["paper_comparable"]:
        avg = res["table1"]["average"]["paper"]
        paper_notes = (
            f"<h2>Notes on the paper</h2><p>Section 4.1 of the paper says the average same-model accuracy of "
            f"under-sampled models is {ref['text']['same_model_under_average_percent_as_stated']}%, but its Table 1 "
            f"column averages {fmt(avg['same_model_under'])}%; {ref['text']['same_model_under_average_percent_as_stated']}% "
            f"is the average of the balanced column ({fmt(avg['same_model_balanced'])}%). The different-model average it "
            f"states ({ref['text']['different_model_under_average_percent']}%) matches Table 1 "
            f"({fmt(avg['different_model_under'])}%). This report compares with Table 1 throughout.</p>"
            f"<p class='note'>Reference values: {escape(ref['citation'])} ({escape(ref['source'])}).</p>")
    files = " · ".join(f"<a href='{escape(p)}'>{escape(p)}</a>" for p in [res["files"]["results"], *res["files"]["tables"]])
    acc = res["balanced_clean_accuracy"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(res['title'])}</title><style>{CSS}</style></head><body>
<h1>{escape(res['title'])}</h1>
<p class="meta">Class imbalance and adversarial vulnerability (Possas &amp; Zhou), preset <b>{escape(str(run['preset']))}</b>,
seed {escape(str(run['seed']))}, attack: {escape(run['attack_words'])}. Run folder <code>{escape(run['dir'])}</code>.
Built {escape(res['generated'])} by advimb {escape(__version__)} from stored artifacts only.</p>
{notes}
<h2>At a glance</h2>
<p>Balanced model, clean test accuracy: <b>{ci(acc)}</b>.</p>
<table><thead><tr><th>claim</th><th style="text-align:left">statement</th><th>sign test</th>
<th style="text-align:left">magnitude: this run vs the paper</th></tr></thead>
<tbody>{verdicts}</tbody></table>
<p class="note">{VERDICT_HELP}</p>
<h2>Table 1: accuracy of the target class under attack (%)</h2>
{_table1(res['table1'])}
{t1img}
<h2>Figures</h2>
{''.join(figs)}
{_sweep(res.get('sweep'))}
{experiments_section(res)}
<h2>Claims, checked</h2>
{_claims(claims)}
{paper_notes}
<h2>Configuration</h2>
<pre>{escape(run['config_toml'])}</pre>
<h2>Manifest</h2>
{_manifest(run['manifest'])}
<h2>Files</h2><p>{files}</p>
</body></html>
"""


# ----------------------------------------------------------------------------- experiments beyond the paper

EXPERIMENT_CAPTIONS = {
    "fig8": "Each swept class's training count against every other class's (1 = balanced; left of it "
            "under-sampling, right of it over-sampling). Top: clean accuracy of the class, and its accuracy under "
            "the attack with the model's own gradient and with the balanced model's. Bottom: the relative "
            "difference (clean - attacked) / clean of the same-model attack (undefined where the class is never "
            "recognised clean). Error bars: 95% two-level bootstrap (seeds, then test images).",
    "fig9": "One model per long-tailed training set; each point is a class, placed at its number of training "
            "images. Error bars: 95% two-level bootstrap (seeds, then test images).",
    "fig10": "Means over the defended classes; error bars: 95% two-level bootstrap, paired on the same test "
             "images. The label gives the loss in overall clean test accuracy of the defended under-sampled "
             "models against the plain ones.",
}


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def experiments_section(res: dict[str, Any]) -> str:
    """The page's section on the experiments (empty when none ran)."""
    exp = res.get("experiments") or {}
    parts = []
    if exp.get("seeds", 1) > 1:
        parts.append(f"<p>This run holds <b>{exp['seeds']} seeds</b> (independent replicates of every job). Every "
                     "table and figure shows means over seeds with the one interval method "
                     f"({escape(res.get('interval_method', ''))}); each claim also gets a paired t-test over seeds.</p>")
    lt = exp.get("long_tail") or []
    if lt:
        rows = [[escape(r["profile"]), fmt(r["spearman_rho_count_vs_adversarial_accuracy"], 2),
                 fmt(r["spearman_p"], 4), escape(r["tail_classes"]),
                 ci({"value": r["tail_minus_head_adversarial_accuracy"],
                     "lo": r["tail_minus_head_adversarial_accuracy_lo"],
                     "hi": r["tail_minus_head_adversarial_accuracy_hi"]}, "")] for r in lt]
        parts.append("<h3>Long-tailed training sets</h3>" + _table(
            ["profile", "Spearman rho (count vs accuracy under attack)", "p", "rarer half",
             "rarer minus frequent half, pp [95% interval]"], rows) + f"<p class='note'>Intervals: "
                     f"{escape(res.get('interval_method', ''))}, paired on the same images.</p>")
    de = exp.get("defences") or []
    if de:
        rows = [[escape(r["defence"]), *(ci(r[k], "") for k in ("under_adversarial_accuracy",
                 "defended_adversarial_accuracy", "balanced_adversarial_accuracy", "gap_plain_pp", "gap_defended_pp",
                 "gap_closed_pp")), fmt(r["clean_accuracy_cost_pp"]), escape(r["verdict"])] for r in de]
        parts.append("<h3>Defences</h3><p>Same-model accuracy under attack of the under-sampled target class, "
                     "mean over the defended classes, % [95% interval: "
                     f"{escape(res.get('interval_method', ''))}, paired on the same images]; the gap is balanced "
                     "minus under-sampled; "
                     "the clean cost is the drop in overall clean test accuracy. Verdict: <i>closes the gap</i> when "
                     "the defence raises the under-sampled model's accuracy (interval above 0) and the remaining gap's "
                     "interval reaches 0, <i>narrows</i> when only the first holds.</p>" + _table(
                         ["defence", "under, plain", "under, defended", "balanced", "gap before (pp)",
                          "gap after (pp)", "closed (pp)", "clean cost (pp)", "verdict"], rows))
    if not parts and not exp.get("figures"):
        return ""
    return "<h2>Beyond the paper</h2>" + "".join(parts)
