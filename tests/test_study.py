"""The study's rows and tables (facefill.study): synthetic rows, no training."""

import pytest

from facefill import study

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
    return _row(data="celeba128+faces128", test_sets=sets, bins=sets["celeba128"], **change)


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
