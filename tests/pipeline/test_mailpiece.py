"""Mailpiece weight and thickness before printing: the pure figures, the profile's
[materials] (one line per mistake), and through the pipeline against the sandbox a letter
just over its postage's weight bound REJECTED TOO_HEAVY with the figures, one just under
accepted and dispatched."""

import pytest

from appliance.config.profile import load_profile
from appliance.core.errors import ConfigError
from appliance.core.mailpiece import Materials, mailpiece, over_bound
from appliance.core.packs import load_packs
from appliance.runtime.demo import demo_profile_path
from tests.fixtures.floor import Floor, new_sandbox

PACKS = load_packs()


def test_figures_and_defaults():
    pack = PACKS["notify-c4"]  # 19 sheets of 80 gsm A4, economy: at most 500 g, 25 mm
    p = mailpiece(pack, 19, Materials())
    assert p.weight_g == pytest.approx(19 * 80 * 0.210 * 0.297 + 4.5, abs=0.05)  # economy-c5 default
    assert p.thickness_mm == pytest.approx(19 * 0.1 + 0.3, abs=0.01)
    assert over_bound(pack, p) is None
    code, text = over_bound(PACKS["notify-c5"], mailpiece(PACKS["notify-c5"], 19, Materials()))
    assert code == "TOO_HEAVY" and "19 sheets 80 gsm A4" in text and "at most 100 g" in text
    thick = Materials(paper_caliper_mm={PACKS["notify-c5"].paper_id: 1.5})
    code, text = over_bound(PACKS["notify-c5"], mailpiece(PACKS["notify-c5"], 4, thick))
    assert code == "TOO_THICK" and "at most 5 mm" in text


@pytest.mark.parametrize("materials,words", [
    ('caliper_mm_per_gsm = 0', "caliper_mm_per_gsm: must be above 0"),
    ('[materials.envelopes]\n"economy-c5" = { weight_g = 4.5 }', '"economy-c5": thickness_mm missing'),
    ('[materials.envelopes]\n"economy-c5" = { weight_g = -1, thickness_mm = 0.3 }',
     "weight_g must be 0-5000"),
    ('[materials.inserts]\n"CSP15" = 5', '[materials.inserts] "CSP15": must be a table'),
    ('[materials.paper]\n"paper-1" = { caliper_mm = 0 }', "caliper_mm: give the thickness of one sheet"),
    ('colour = 1', "colour: unknown key"),
])
def test_materials_mistakes_are_one_line(tmp_path, materials, words):
    path = tmp_path / "p.toml"
    path.write_text(demo_profile_path().read_text() + "\n[materials]\n" + materials + "\n")
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


async def test_just_over_the_weight_bound_is_rejected_just_under_is_dispatched(tmp_path):
    # economy-c4 (notify-c5's envelope) weighed at 82.5 g: 3 sheets make 97.5 g, 4 make 102.5 g
    # against the economy postage's 100 g.
    profile = tmp_path / "p.toml"
    profile.write_text(demo_profile_path().read_text()
                       + '\n[materials.envelopes]\n"economy-c4" = { weight_g = 82.5, thickness_mm = 0.3 }\n')
    sb = await new_sandbox(good=0)
    try:
        async with Floor(sb, tmp_path, profile=profile) as f:
            under = sb.add_letter(specification_id="notify-c5", pages=6)
            over = sb.add_letter(specification_id="notify-c5", pages=8)
            await f.wait_final([under, over], timeout=30)
            assert f.store.get(under)["weight_g"] == pytest.approx(97.5, abs=0.1)
    finally:
        await sb.stop()
    assert sb.letters[under].status == "DISPATCHED"
    bad = sb.letters[over]
    assert bad.supplier_statuses() == ["REJECTED"] and bad.reason_code == "TOO_HEAVY"
    assert "mailpiece 102.5 g (4 sheets 80 gsm A4 + envelope economy-c4 82.5 g)" in bad.reason_text
    assert "postage economy allows at most 100 g" in bad.reason_text
