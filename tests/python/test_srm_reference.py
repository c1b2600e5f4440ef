"""The SRM reference fixture is scipy's answer on the generated counts, as committed: it cannot
go stale or be edited by hand (tests/it/srm.rs compares archiver::health::srm with it)."""

import json

import srm_reference


def test_the_fixture_is_scipys_answer():
    committed = json.loads(srm_reference.FIXTURE.read_text())
    fresh = srm_reference.reference()
    assert len(committed["cases"]) == len(fresh["cases"]) > 300
    for c, f in zip(committed["cases"], fresh["cases"]):
        assert (c["observed"], c["weights"]) == (f["observed"], f["weights"])
        # Another scipy build may differ in the last bits; tests/it/srm.rs allows 1e-9 too.
        for key in ("chi_squared", "p_value"):
            assert c[key] == f[key] or abs(c[key] - f[key]) <= 1e-12 * abs(f[key]), (key, c, f)


def test_the_cases_reach_the_far_tail_and_the_centre():
    p = [c["p_value"] for c in srm_reference.reference()["cases"]]
    assert min(p) == 0.0
    assert any(0 < x < 1e-100 for x in p)
    assert any(1e-12 < x < 1e-3 for x in p)
    assert any(x > 0.5 for x in p)
