"""The study's rows and tables (facefill.study): synthetic rows, no training."""

import json

import pytest

from facefill import study, study_plot

BINS = {b: {"psnr": 20.0, "ssim": 0.8, "l1": 0.03} for b in ("0.1-0.2", "0.3-0.4")}
BASE = {"model": "apfi", "preset": "small", "recipe": "own: apfi + patchgan", "data": "celeba+faces128",
        "size": 128, "steps": 5000, "batch": 8, "seed": 0, "masks": "128px-seed0-n63", "commit": "abc123",
        "bins": BINS}


def _row(**change):
    return {**BASE, **change}


def _tables(markdown: str) -> list[str]:
    return [t for t in markdown.split("## ")[1:]]


def _table_of(markdown: str, model: str) -> str:
    (table,) = [t for t in _tables(markdown) if f"| {model} (" in t]
    return table


@pytest.mark.parametrize("change", [
    {"steps": 2000}, {"batch": 4}, {"size": 64}, {"data": "faces128"}, {"masks": "64px-seed0-n63"},
])
def test_a_row_at_another_setting_never_shares_a_table(change):
    rows = [_row(), _row(model="rfr"), _row(model="pconv", **change)]
    md = study.render(rows)
    assert len(_tables(md)) == 2
    other = _table_of(md, "pconv")
    assert "| apfi (" not in other and "| rfr (" not in other
    key, value = next(iter(change.items()))
    heading = other.splitlines()[0] + other.splitlines()[2]
    assert str(value) in heading  # the table says its setting
    assert "| pconv (" not in _table_of(md, "apfi")


def test_a_row_from_another_commit_is_marked_in_its_table():
    rows = [_row(), _row(model="rfr"), _row(model="lama", commit="def456")]
    md = study.render(rows)
    (table,) = _tables(md)
    lines = {line.split(" |")[0]: line for line in table.splitlines() if line.startswith("| ") and "(" in line}
    assert f"def456 {study.MARK}" in lines["| lama (small)"]
    assert study.MARK not in lines["| apfi (small)"] and study.MARK not in lines["| rfr (small)"]
    assert "Reference commit: abc123" in table and f"{study.MARK} trained and evaluated at another commit" in table
    # Every row of every table names its commit, marked or not.
    for line in lines.values():
        assert "abc123" in line or f"def456 {study.MARK}" in line


def test_no_table_is_unmarked_across_settings_or_commits_exhaustively():
    rows = [_row(model=m, steps=s, size=z, data=d, commit=c)
            for m in ("apfi", "rfr") for s in (2000, 5000) for z in (64, 128)
            for d in ("faces128", "celeba+faces128") for c in ("abc123", "def456")]
    for table in _tables(study.render(rows)):
        body = [line for line in table.splitlines() if line.startswith("| ") and "(" in line]
        commits = {line.split(" | ")[3] for line in body}
        assert len(commits) <= 2 and sum(study.MARK not in c for c in commits) == 1  # one reference, others marked
        assert len(body) == 4  # 2 models x 2 commits: exactly the rows of this setting


def test_rows_are_stored_one_file_per_key_and_replace_only_their_own(tmp_path):
    a = study.save_row(tmp_path, _row())
    b = study.save_row(tmp_path, _row(seed=1))
    again = study.save_row(tmp_path, _row(bins={**BINS, "0.1-0.2": {"psnr": 21.0, "ssim": 0.8, "l1": 0.03}}))
    assert a == again != b and len(study.load_rows(tmp_path)) == 2
    assert "abc123" in a.name and "_5000_8_0_" in a.name and "_celeba+faces128_" in a.name
    with pytest.raises(ValueError, match="missing \\['commit'\\]"):
        study.save_row(tmp_path, {k: v for k, v in BASE.items() if k != "commit"})


def test_identity_column_appears_when_rows_have_it():
    with_id = {b: {**m, "identity": 0.9} for b, m in BINS.items()}
    md = study.render([_row(bins=with_id), _row(model="telea")])
    assert "identity 0.1-0.2" in md and "0.9000" in md and " – |" in _table_of(md, "telea")


# ---------------------------------------------------------------- two test sets (data folders)

def _sets(celeba_psnr=20.0, faces_psnr=24.0, **extra):
    def bins(psnr):
        return {b: {"psnr": psnr + i, "ssim": 0.8, "l1": 0.03, **extra} for i, b in enumerate(("0.1-0.2", "0.3-0.4"))}
    return {"celeba128": bins(celeba_psnr), "faces128": bins(faces_psnr)}


def _two(**change):
    sets = change.pop("test_sets", None) or _sets()
    return _row(**{"data": "celeba128+faces128", "test_sets": sets, "bins": sets["celeba128"], **change})


def _body(table: str) -> dict[str, str]:
    return {line.split(" |")[0]: line for line in table.splitlines() if line.startswith("| ") and "(" in line}


def test_every_test_set_is_its_own_table_with_its_own_numbers():
    md = study.render([_two(), _two(model="rfr", test_sets=_sets(18.0, 22.0))])
    tables = _tables(md)
    assert [t.splitlines()[0] for t in tables] == [
        "celeba128 test set: 5000 steps of batch 8 at 128x128 on celeba128+faces128",
        "faces128 test set: 5000 steps of batch 8 at 128x128 on celeba128+faces128",
    ]
    celeba, faces = (_body(t) for t in tables)
    assert "| 20.00 |" in celeba["| apfi (small)"] and "| 21.00 |" in celeba["| apfi (small)"]
    assert "| 24.00 |" in faces["| apfi (small)"] and "| 25.00 |" in faces["| apfi (small)"]
    assert "| 18.00 |" in celeba["| rfr (small)"] and "| 22.00 |" in faces["| rfr (small)"]
    assert "24.00" not in tables[0] and "20.00" not in tables[1]


def test_two_test_sets_never_mix_settings_or_hide_another_commit_exhaustively():
    rows = [_two(model=m, steps=s, size=z, batch=b, commit=c, test_sets=_sets(20.0 + s / 1000, 30.0 + s / 1000))
            for m in ("apfi", "rfr") for s in (2000, 5000) for z in (64, 128) for b in (4, 8)
            for c in ("abc123", "def456")]
    tables = _tables(study.render(rows))
    assert len(tables) == 2 * 2 * 2 * 2  # settings x test sets
    for table in tables:
        heading = table.splitlines()[0]
        body = [line for line in table.splitlines() if line.startswith("| ") and "(" in line]
        assert len(body) == 4  # 2 models x 2 commits, exactly the rows of this setting
        commits = {line.split(" | ")[3] for line in body}
        assert sum(study.MARK not in c for c in commits) == 1
        steps = int(heading.split(": ")[1].split(" steps")[0])
        psnr = (20.0 if heading.startswith("celeba128") else 30.0) + steps / 1000  # this setting's and set's own
        assert all(f"| {psnr:.2f} |" in line for line in body)


def test_grad_ratio_and_identity_columns_per_test_set_and_a_missing_set_is_a_dash():
    md = study.render([
        _two(test_sets=_sets(grad_ratio=0.8, identity=0.9)),
        _two(model="telea", test_sets={"celeba128": _sets(grad_ratio=None)["celeba128"]}),
    ])
    celeba, faces = _tables(md)
    assert "grad ratio 0.3-0.4" in celeba and "identity 0.3-0.4" in celeba and "| 0.80 | 0.9000 |" in celeba
    telea_celeba = _body(celeba)["| telea (small)"]
    assert telea_celeba.endswith("| 0.0300 | – | – |")  # grad ratio None (flat ground truth), no identity
    assert _body(faces)["| telea (small)"].count(" – |") == 2 * 5  # not evaluated on faces128: every cell a dash


def test_a_row_without_test_sets_is_read_as_its_first_data_folder():
    row = _row(data="celeba128+faces128")  # bins only, as rows before per-folder results
    (table,) = _tables(study.render([row]))
    assert table.startswith("celeba128 test set:") and study.test_sets(row) == {"celeba128": BINS}


# ---------------------------------------------------------------- quality-per-cost plot (facefill.study_plot)

def _cost_report(preset="small", size=128, models=("apfi", "rfr"), key="cpu_fp32_latency_{size}_ms"):
    latency = {m: {key.format(size=size): 100.0 + i} for i, m in enumerate(models)}
    return {"settings": {"preset": preset}, "models": latency}


def _fixed_gflops(row):
    return {"apfi": 2.0, "rfr": 4.0, "telea": 0.0}.get(row["model"])


@pytest.mark.parametrize("change", [
    {"steps": 2000}, {"batch": 4}, {"size": 64}, {"data": "faces128"}, {"masks": "64px-seed0-n63"},
])
def test_the_plot_refuses_rows_of_another_setting(change):
    rows = [_two(), _two(model="rfr"), _two(model="pconv", **change)]
    with pytest.raises(study_plot.InputError, match="one setting"):
        study_plot.cost_points(rows, _cost_report(), gflops=_fixed_gflops)
    assert len(study_plot.cost_points(rows[:2], _cost_report(), gflops=_fixed_gflops).points) == 4


def test_plot_points_one_per_row_and_test_set_off_commit_marked_and_missing_latency_said():
    rows = [_two(), _two(model="rfr", test_sets=_sets(18.0, 22.0)), _two(model="telea", commit="def456")]
    cp = study_plot.cost_points(rows, _cost_report(), "cost-2026-12-01.json", gflops=_fixed_gflops)
    got = {(p.label, p.test_set): (p.psnr, p.gflops, p.latency_ms) for p in cp.points}
    assert got == {
        ("apfi", "celeba128"): (21.0, 2.0, 100.0), ("apfi", "faces128"): (25.0, 2.0, 100.0),  # the 0.3-0.4 bin
        ("rfr", "celeba128"): (19.0, 4.0, 101.0), ("rfr", "faces128"): (23.0, 4.0, 101.0),
        (f"telea {study.MARK}", "celeba128"): (21.0, 0.0, None), (f"telea {study.MARK}", "faces128"): (25.0, 0.0, None),
    }
    assert cp.marked and cp.reference == "abc123"
    why = "cost-2026-12-01.json: it has no 128 px latency for the model"
    assert cp.notes == [f"Left out of the latency panel ({why}): telea {study.MARK}."]


def test_latency_is_read_from_the_fp32_column_and_from_reports_before_the_modes():
    for key in ("cpu_fp32_latency_{size}_ms", "cpu_latency_{size}_ms"):
        cp = study_plot.cost_points([_two()], _cost_report(key=key), "cost.json", gflops=_fixed_gflops)
        assert [p.latency_ms for p in cp.points if p.label == "apfi"][0] == 100.0


def test_a_cost_report_of_another_preset_gives_no_latency_and_says_so():
    cp = study_plot.cost_points([_two()], _cost_report(preset="paper"), "cost-2026-11-30.json", gflops=_fixed_gflops)
    assert all(p.latency_ms is None for p in cp.points)
    assert cp.notes == ["Left out of the latency panel (cost-2026-11-30.json: it measured the paper preset): apfi."]
    # an ablation of the measured preset is another network: its latency is not the preset's
    cp = study_plot.cost_points([_two(preset="small[kca=false]")], _cost_report(), "cost.json", gflops=_fixed_gflops)
    assert all(p.latency_ms is None for p in cp.points)
    assert cp.notes == [
        "Left out of the latency panel (cost.json: it measured the small preset, not its ablations): apfi.",
    ]


def test_gflops_are_count_cost_at_the_rows_size_or_the_stored_figure_for_an_unregistered_model():
    from facefill.cost import count_cost

    (point, _) = study_plot.cost_points([_two(model="pconv", size=128)], None).points
    assert point.gflops == pytest.approx(count_cost("pconv", "small", 128).flops / 1e9)
    (point, _) = study_plot.cost_points([_two(model="gfpgan", preset="GFPGANv1-clean", gflops=3.5)], None).points
    assert point.gflops == 3.5


def test_the_latest_full_cost_report_is_read_never_a_quick_one(tmp_path):
    for name in ("cost-2026-11-25.json", "cost-2026-11-30.json", "cost-2026-12-01-quick.json", "costs.json",
                 "cost-2026-11-29-small.json", "cost-2026-12-01-small.json"):
        (tmp_path / name).write_text("{}")
    assert study_plot.latest_cost_file(tmp_path).name == "cost-2026-11-30.json"  # the paper presets'
    assert study_plot.latest_cost_file(tmp_path, "small").name == "cost-2026-12-01-small.json"
    assert study_plot.latest_cost_file(tmp_path, "tiny") is None
    assert study_plot.latest_cost_file(tmp_path / "none") is None


def test_render_plots_writes_one_valid_png_per_setting(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    cost = tmp_path / "cost-2026-12-01.json"
    cost.write_text(json.dumps(_cost_report()))
    rows = [_two(), _two(model="rfr", commit="def456"), _two(model="telea"), _two(steps=2000)]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "stale.png").write_bytes(b"old")
    md = study_plot.render_plots(rows, tmp_path / "plots", cost, link="plots")
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [
        "celeba128+faces128_128px_2000x8_128px-seed0-n63.png", "celeba128+faces128_128px_5000x8_128px-seed0-n63.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 600
        assert f"(plots/{png.name})" in md
    assert md.count("## Quality per cost: ") == 2 and "2000 steps of batch 8" in md
    assert f"{study.MARK} trained and evaluated at another commit than the reference (abc123)" in md


def test_render_plots_without_matplotlib_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(study_plot, "plot_status", lambda: "quality-per-cost plot skipped: it needs matplotlib")
    md = study_plot.render_plots([_two()], tmp_path / "plots", None)
    assert "Not drawn: quality-per-cost plot skipped: it needs matplotlib." in md
    assert not (tmp_path / "plots").exists()


def test_labels_tell_rows_of_one_model_apart_and_no_report_is_said():
    rows = [_two(), _two(recipe="shared: apfi + patchgan"), _two(model="pconv", recipe="own: pconv")]
    cp = study_plot.cost_points(rows, None, gflops=_fixed_gflops)
    assert sorted({p.label for p in cp.points}) == ["apfi own", "apfi shared", "pconv"]
    assert "Left out of the latency panel (no cost report): apfi own, apfi shared, pconv." in cp.notes
    assert "Left out of the GFLOP panel (not a registered model): pconv." in cp.notes  # _fixed_gflops knows no pconv


# ---------------------------------------------------------------- ablations and cycles at inference


def test_an_ablation_row_is_keyed_apart_from_its_base_and_shares_its_table(tmp_path):
    assert study.variant_preset("small", {}) == "small"
    assert study.variant_preset("small", {"kca": False}) == "small[kca=false]"
    assert study.variant_preset("small", {"cycles": 2, "gated_unet": False}) == "small[cycles=2,gated_unet=false]"
    assert study.variant_preset("small", {"reasoning": [48, 96, 144]}) == "small[reasoning=[48,96,144]]"
    base, ablation = _row(), _row(preset=study.variant_preset("small", {"kca": False}))
    paths = {study.save_row(tmp_path, r) for r in (base, ablation)}
    assert len(paths) == 2  # neither replaces the other
    md = study.render(study.load_rows(tmp_path))
    assert len(_tables(md)) == 1  # one setting: the ablation reads beside its base
    assert "| apfi (small) |" in md and "| apfi (small[kca=false]) |" in md


def test_cycles_at_inference_are_one_table_per_row_and_test_set_with_the_trained_count_marked():
    sweep = {str(c): {"0.3-0.4": {"psnr": 20.0 + c, "ssim": 0.8, "l1": 0.03}} for c in (1, 2, 6)}
    rows = [_row(inference_cycles={"celeba": sweep, "faces128": sweep}, trained_cycles=6), _row(model="rfr")]
    md = study.render_cycles(rows)
    tables = _tables(md)
    assert [t.splitlines()[0] for t in tables] == [
        "Cycles at inference: apfi (small), celeba test set", "Cycles at inference: apfi (small), faces128 test set",
    ]
    lines = [line for line in tables[0].splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split("|")[1].strip() for line in lines] == ["1", "2", "6 *"]
    assert "| 26.00 |" in lines[2] and "| 21.00 |" in lines[0]
    assert "5000 steps of batch 8" in tables[0]  # the row's budget is said
    assert study.render_cycles([_row()]) == ""


def test_the_commit_is_dirty_for_changed_code_but_not_for_the_studys_outputs_or_documents(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "benchmarks/results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "README.md").write_text("docs\n")
    (tmp_path / "benchmarks/results/study.md").write_text("rows\n")
    git("add", ".")
    git("commit", "-qm", "x")
    clean = study.git_commit(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "benchmarks/results/study.md").write_text("more rows\n")  # what every row re-renders
    (tmp_path / "README.md").write_text("more docs\n")
    assert study.git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("a = 2\n")
    assert study.git_commit(tmp_path) == clean + "-dirty"
    assert study.git_commit(tmp_path / "not-a-repo") == "unknown"


def test_ablations_are_one_table_per_base_with_each_change_and_its_difference():
    def bins(psnr):
        return {"0.3-0.4": {"psnr": psnr, "ssim": 0.8, "l1": 0.03}}
    shared = "shared-x: apfi + patchgan"
    base = _row(recipe=shared, bins=bins(22.0), params=2_240_000, gflops=3.0)
    rows = [
        base,
        _row(recipe=shared, preset="small[kca=false]", bins=bins(21.5), params=2_000_000, gflops=2.5),
        _row(recipe="shared-x-nocritic: apfi", bins=bins(22.25), commit="def456"),
        _row(recipe="shared-x+poisson: apfi + patchgan", bins=bins(23.0)),
        _row(model="rfr", recipe=shared, bins=bins(20.0)),
        _row(model="pconv", recipe="own: pconv", bins=bins(19.0)),  # another recipe: not an ablation
        _row(recipe=shared, preset="small[kca=false]", steps=2000, bins=bins(30.0)),  # another setting
        _row(model="rfr", preset="small[x=1]", recipe=shared, bins=bins(1.0)),  # another model's variant
    ]
    rows += [  # the base again with another seed: the spread, never a base of its own; seed 1's
        _row(recipe=shared, seed=1, bins=bins(21.75)),  # variant is no ablation of seed 0's base
        _row(recipe=shared, preset="small[kca=false]", seed=1, bins=bins(2.0)),
    ]
    groups = study.ablation_groups(rows)
    assert [(b["model"], b["preset"], [c for c, _ in ch]) for b, ch in groups] == [
        ("apfi", "small", ["Poisson-blended fills (same weights)", "no critic", "seed 1 (run-to-run spread)",
                           "kca=false", "model rfr (small)"]),
        ("rfr", "small", ["model apfi (small)", "x=1"]),  # RFR-Net's own ablation: its own table
    ]
    md = study.render_ablations(rows)
    table, rfr_table = _tables(md)
    assert rfr_table.startswith("Ablations of rfr (small)") and "| x=1 |" in rfr_table
    assert table.startswith("Ablations of apfi (small), celeba test set: 5000 steps of batch 8")
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| change")]
    assert lines[0].startswith("| — (base) | abc123 | 2.24 | 3.00 | 22.00 | 0.8000 |")
    assert "| kca=false | abc123 | 2.00 | 2.50 | 21.50 (-0.50) | 0.8000 (+0.0000) |" in lines
    assert any(line.startswith(f"| no critic | def456 {study.MARK} |") and "22.25 (+0.25)" in line for line in lines)
    assert any(line.startswith("| model rfr (small) |") and "20.00 (-2.00)" in line for line in lines)
    assert any(line.startswith("| Poisson-blended fills (same weights) |") and "23.00 (+1.00)" in line for line in lines)
    assert any(line.startswith("| seed 1 (run-to-run spread) |") and "21.75 (-0.25)" in line for line in lines)
    assert "30.00" not in md and "| 19.00 " not in md and "| 2.00 (" not in md and "| x=1 |" not in table
    assert study.render_ablations([base, rows[4]]) == ""  # another model alone is no ablation


def test_labels_of_points_at_one_spot_are_stacked_not_drawn_over_each_other():
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_xlim(-1, 10)
    ax.set_ylim(18, 24)
    study_plot._annotate(ax, [(0.0, 23.0, "telea"), (0.0, 23.02, "ns"), (5.0, 23.0, "apfi"), (0.0, 19.0, "pconv")])
    offsets = {a.get_text(): a.xyann[1] for a in ax.texts}
    assert offsets["ns"] == pytest.approx(3)  # the higher point keeps its place
    assert offsets["telea"] < offsets["ns"] - 8  # moved below it, a label's height
    assert offsets["apfi"] == pytest.approx(3) and offsets["pconv"] == pytest.approx(3)  # nothing in their way
