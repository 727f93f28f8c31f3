"""What a read-back proves (appliance.pipeline.prover.judge)."""

from appliance.pipeline.prover import judge


def entries(*statuses):
    return [{"seq": i + 1, "status": s} for i, s in enumerate(statuses)]


def test_shown_status_proves_up_to_it():
    assert judge(entries("ACCEPTED", "PRINTED", "ENCLOSED"), "PRINTED") == ("proven", 2)
    assert judge(entries("ACCEPTED"), "ACCEPTED") == ("proven", 1)


def test_pending_or_an_earlier_status_means_nothing_took():
    assert judge(entries("ACCEPTED", "PRINTED"), "PENDING") == ("lost", None)
    assert judge(entries("ENCLOSED", "DISPATCHED"), "ACCEPTED") == ("lost", None)


def test_a_status_this_appliance_never_sent_is_another_writer():
    assert judge(entries("ACCEPTED", "PRINTED"), "DISPATCHED") == ("conflict", None)
    assert judge(entries("PRINTED"), "CANCELLED") == ("conflict", None)
